"""``sreagent collect``: the node collector (issue 3)."""

from __future__ import annotations

import typer

from sreagent.cli import app
from sreagent.errors import NotLanded


@app.command(
    "collect",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def collect_command(ctx: typer.Context) -> None:
    """the node collector (not built yet)."""
    raise NotLanded(
        "`sreagent collect` is the node collector, which is not built yet (issue 3); "
        "nothing was done"
    )
