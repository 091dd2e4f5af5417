"""``sreagent demo``: the project's main job on an embedded default (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from sreagent.cli import app


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Where to write the output."),
) -> None:
    """Run the longest built path (scenario -> wire -> journal -> chain -> package -> replay)."""
    from sreagent.demo import run_demo

    result = run_demo(out)
    typer.echo("")
    for label, path in result.items():
        typer.echo(f"{label}: {path}")
