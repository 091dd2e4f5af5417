"""``sreagent eval``: the role chain and the baselines on labelled telemetry (issue 9)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from sreagent.cli import app

console = Console(soft_wrap=True, stderr=True)


@app.command("eval")
def eval_command(
    dataset: Path = typer.Argument(..., help="A dataset folder in the sreagent-cases/1 layout."),
    task: str = typer.Option(..., "--task", help="rca or detection (must match the cases)."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write the report (one JSON object) to this file."
    ),
    work: Path | None = typer.Option(
        None,
        "--work",
        help="Keep the imported packages and recorded chain runs here (default: a temporary "
        "folder, removed afterwards).",
    ),
    case: list[str] = typer.Option(
        [], "--case", help="Only this case id (repeatable); default every case."
    ),
) -> None:
    """Score the role chain beside BARO, N-sigma and NAB's windowed Gaussian on the same cases."""
    from sreagent.atomic import atomic_write_bytes
    from sreagent.errors import BadInput
    from sreagent.eval import load_dataset
    from sreagent.eval.chain import evaluate

    if task not in ("rca", "detection"):
        raise BadInput(f"unknown task {task!r}; use rca or detection", field="--task")
    if work is not None and work.exists() and any(work.iterdir()):
        raise BadInput("--work must be a new or empty folder (evidence packages are written "
                       "once)", path=str(work), field="--work")
    loaded = load_dataset(dataset)  # refuses a malformed case before anything runs
    cases = len(case) if case else len(loaded)
    # One step for the chain on each case, one per baseline and case (BARO needs a training
    # part, so a streaming detection dataset has two baselines).
    streaming = task == "detection" and not any(c.has_baseline for c in loaded)
    steps = cases * (1 + (2 if streaming else 3))

    def run(folder: Path) -> dict[str, object]:
        with Progress(console=console, transient=True) as progress:
            bar = progress.add_task(f"eval {loaded.name} ({task})", total=steps)

            def step(what: str) -> None:
                progress.update(bar, advance=1, description=f"{loaded.name}: {what}")

            return evaluate(dataset, task, work=folder, progress=step,  # type: ignore[arg-type]
                            case_ids=case or None)

    if work is not None:
        result = run(work)
    else:
        with tempfile.TemporaryDirectory(prefix="sreagent-eval-") as tmp:
            result = run(Path(tmp))
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    if json_out is not None:
        atomic_write_bytes(json_out, text.encode())
        console.print(f"wrote {json_out}")
    else:
        typer.echo(text, nl=False)
