"""``sreagent demo``: the project's main job on this machine (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from sreagent.cli import app


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Where to write the output."),
    live: bool = typer.Option(False, "--live", help="Only the live demo: fail (exit 2, saying "
                              "why) where it cannot run instead of falling back."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Only the synthetic demo (a "
                                   "recorded scenario; no root needed, nothing injected)."),
) -> None:
    """A live cpu-hog fault caught by the collector, controller and role chain (as root), else
    the synthetic scenario demo; prints the report and where the outputs went."""
    from sreagent.demo import run_demo
    from sreagent.errors import BadInput

    if live and synthetic:
        raise BadInput("--live and --synthetic exclude each other")
    result = run_demo(out, mode="live" if live else "synthetic" if synthetic else "auto")
    typer.echo("")
    for label, path in result.items():
        typer.echo(f"{label}: {path}")
