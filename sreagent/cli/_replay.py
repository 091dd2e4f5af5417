"""``sreagent replay``: the deterministic replay engine (issue 7)."""

from __future__ import annotations

import typer

from sreagent.cli import app
from sreagent.errors import NotLanded


@app.command(
    "replay",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def replay_command(ctx: typer.Context) -> None:
    """the deterministic replay engine (not built yet)."""
    raise NotLanded(
        "`sreagent replay` is the deterministic replay engine, which is not built yet (issue 7); "
        "nothing was done"
    )
