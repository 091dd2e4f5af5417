"""``sreagent import``: telemetry captured elsewhere into evidence packages."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from sreagent.cli import app

console = Console(soft_wrap=True, stderr=True)


@app.command("import")
def import_command(
    source: Path = typer.Argument(
        ...,
        help="A CSV/Parquet table, a Prometheus query_range JSON "
        "export, a sreagent-cases/1 case folder or dataset folder.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Package folder (for a dataset: a folder that gets one package per case).",
    ),
    fmt: str | None = typer.Option(
        None, "--format", "-f", help="long, wide, prometheus, case or dataset (default: guess)."
    ),
    host: str | None = typer.Option(
        None,
        help="Host name for the batches (default: the case's system or dataset, else 'imported').",
    ),
    entity: str = typer.Option("host", help="Entity of a wide table's columns."),
    entity_label: str = typer.Option("instance", help="Prometheus label that names the entity."),
    run_id: str | None = typer.Option(
        None, help="Run id of the package (default from the source)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object per package."),
) -> None:
    """Import telemetry into evidence packages that replay and evaluation read."""
    from typing import cast

    from sreagent.errors import BadInput
    from sreagent.importers import FORMATS, Format, detect_format, import_path

    if fmt is not None and fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", field="--format")
    chosen = cast(Format, fmt) if fmt else detect_format(source)
    if chosen == "dataset":
        total = sum(1 for p in (source / "cases").iterdir() if (p / "case.json").exists())
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"importing {source.name}", total=total)
            results = import_path(
                source, out, fmt="dataset", host=host, on_case=lambda _case: progress.advance(task)
            )
    else:
        results = import_path(
            source,
            out,
            fmt=chosen,
            host=host,
            entity=entity,
            entity_label=entity_label,
            run_id=run_id,
        )
    for result in results:
        summary = {
            "source": str(result.source),
            "package": str(result.package),
            "run_id": result.manifest.run_id,
            "rows": result.rows,
            "batches": result.manifest.files["batches.parquet"].rows,
            "dropped_non_finite": result.dropped_non_finite,
        }
        if json_output:
            typer.echo(json.dumps(summary, sort_keys=True))
        else:
            dropped = (
                f", dropped {result.dropped_non_finite} non-finite samples"
                if result.dropped_non_finite
                else ""
            )
            typer.echo(
                f"{result.package}: {result.rows} samples in {summary['batches']} batches{dropped}"
            )
