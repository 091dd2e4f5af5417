"""``sreagent lab``: the scenario library (issue 5)."""

from __future__ import annotations

import typer

from sreagent.cli import app
from sreagent.errors import NotLanded


@app.command(
    "lab",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def lab_command(ctx: typer.Context) -> None:
    """the scenario library (not built yet)."""
    raise NotLanded(
        "`sreagent lab` is the scenario library, which is not built yet (issue 5); "
        "nothing was done"
    )
