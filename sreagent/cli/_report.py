"""``sreagent report``: the papermill reports (docs/notebooks.md).

``postmortem PACKAGE -o report.html`` lays one recorded run out for a postmortem;
``regression -o regression.html`` replays the golden packages and scores the role chain on the
scenario library and on the public datasets (Nezha, NAB), and exits 1 when a figure is worse than the committed baseline.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.console import Console

from sreagent.cli import app
from sreagent.errors import BadInput, CheckFailed

report_app = typer.Typer(
    name="report",
    help="Papermill reports rendered to self-contained HTML (and PDF with --pdf).",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")
console = Console(soft_wrap=True)

DEFAULT_BASELINE = "notebooks/regression_baseline.json"
DEFAULT_DATASETS = "../shared/datasets"
"""Where CI and the checkout's neighbours keep the public datasets (beside the repository)."""


@report_app.command("postmortem")
def postmortem_command(
    package: Path = typer.Argument(..., help="Evidence package folder of a recorded chain run."),
    output: Path = typer.Option(..., "-o", "--output", help="HTML file to write."),
    pdf: bool = typer.Option(
        False, "--pdf", help="Also print the HTML to a PDF beside it (headless Chromium)."
    ),
) -> None:
    """Postmortem report of one run: summary, timeline plots, hypotheses with their evidence,
    actions and the policy gate's reasons, verification, similar incidents, the artifact chain."""
    from sreagent.reports import load_postmortem, render_report

    load_postmortem(package)  # a bad package fails here, naming the file, before a kernel starts
    html = render_report(
        "postmortem",
        {"package": str(package.resolve()), "output": str(output.resolve())},
        output,
        pdf=pdf,
    )
    console.print(
        f"wrote {html}" + (f" and {html.with_suffix('.pdf')}" if pdf else ""), highlight=False
    )


def _overrides(values: list[str]) -> dict[str, object]:
    from sreagent.replay import parse_override

    return dict(parse_override(v) for v in values)


@report_app.command("regression")
def regression_command(
    output: Path = typer.Option(..., "-o", "--output", help="HTML file to write."),
    replays: Path = typer.Option(
        Path("replays"), "--replays", help="Folder of golden packages to replay."
    ),
    baseline: Path = typer.Option(
        Path(DEFAULT_BASELINE), "--baseline", help="Baseline JSON to compare with."
    ),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="Compare with no baseline."),
    scenario: list[str] = typer.Option(
        [], "--scenario", help="Run only these scenarios (repeatable; default all)."
    ),
    datasets: Path = typer.Option(
        Path(DEFAULT_DATASETS),
        "--datasets",
        help="Folder of the public datasets (nezha, nab) to run through the chain; a missing "
        "folder leaves their figures not computable (worse than a baseline that has them).",
    ),
    no_datasets: bool = typer.Option(
        False, "--no-datasets", help="Skip the public datasets (their figures are not compared)."
    ),
    resolution: int = typer.Option(
        5, "--resolution", min=1, help="Scenario resolution in seconds."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="KEY=VALUE chain configuration override for every scenario."
    ),
    write_baseline: Path | None = typer.Option(
        None, "--write-baseline", help="Also write this run's figures as a baseline file."
    ),
    figures_json: Path | None = typer.Option(
        None, "--json", help="Also write the figures and regressions as JSON."
    ),
    pdf: bool = typer.Option(False, "--pdf", help="Also print the HTML to a PDF beside it."),
) -> None:
    """Regression report: determinism of every golden replay, detection precision/recall/F1
    and latency, RCA AC@1/AC@3 by fault class, per-scenario verdicts, the chain on the public
    datasets (Nezha, NAB), and the change against the baseline. Exit 1 when any baseline
    figure got worse."""
    from sreagent.atomic import atomic_write_bytes
    from sreagent.reports import render_report
    from sreagent.reports.regression import baseline_document, check_comparable, load_baseline

    overrides = _overrides(set_)
    if not replays.is_dir():
        raise BadInput("no such replays folder", path=str(replays), field="--replays")
    if not no_baseline:
        # A bad or non-comparable baseline fails here (exit 2), before anything runs.
        check_comparable(
            load_baseline(baseline), scenarios=scenario or None, resolution_s=resolution
        )
    with tempfile.TemporaryDirectory(prefix="sreagent-regression-") as tmp:
        result_path = Path(tmp) / "figures.json"
        render_report(
            "regression",
            {
                "replays": str(replays.resolve()),
                "scenarios": list(scenario),
                "datasets": "" if no_datasets else str(datasets.resolve()),
                "resolution_s": resolution,
                "overrides": overrides,
                "baseline": "" if no_baseline else str(baseline.resolve()),
                "output": str(result_path),
            },
            output,
            pdf=pdf,
        )
        result = json.loads(result_path.read_bytes())
    if figures_json is not None:
        atomic_write_bytes(figures_json, (json.dumps(result, indent=2) + "\n").encode())
    if write_baseline is not None:
        document = baseline_document(
            result["figures"], scenarios=scenario or None, resolution_s=resolution
        )
        atomic_write_bytes(write_baseline, (json.dumps(document, indent=2) + "\n").encode())
    console.print(f"wrote {output}", highlight=False)
    undetermined = [r["package"] for r in result["replays"] if not r["identical"]]
    problems = [*result["regressions"]]
    not_run = [
        f"{d['dataset']} ({d['status']})" for d in result["datasets"] if d["status"] != "ran"
    ]
    if not_run:
        console.print(f"datasets not run: {', '.join(not_run)}", highlight=False)
    if undetermined:
        problems.append(f"replays not identical: {', '.join(undetermined)}")
    if problems:
        raise CheckFailed("worse than the baseline: " + "; ".join(problems), path=str(output))
