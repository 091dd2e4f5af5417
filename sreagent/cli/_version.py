"""``sreagent version``."""

from __future__ import annotations

import platform

import typer

from sreagent import __version__
from sreagent.cli import app
from sreagent.telemetry.batch import SCHEMA_VERSION


@app.command()
def version(
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Print the sreagent version and the contract versions it speaks."""
    from sreagent.artifacts import ENVELOPE_VERSION
    from sreagent.evidence import PACKAGE_FORMAT

    info = {
        "sreagent": __version__,
        "python": platform.python_version(),
        "batch": SCHEMA_VERSION,
        "artifact": ENVELOPE_VERSION,
        "evidence": PACKAGE_FORMAT,
    }
    if json_output:
        import json

        typer.echo(json.dumps(info, sort_keys=True))
    else:
        for key, value in info.items():
            typer.echo(f"{key}: {value}")
