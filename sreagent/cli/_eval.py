"""``sreagent eval``: evaluation on labelled telemetry (issue 9)."""

from __future__ import annotations

import typer

from sreagent.cli import app
from sreagent.errors import NotLanded


@app.command(
    "eval",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def eval_command(ctx: typer.Context) -> None:
    """evaluation on labelled telemetry (not built yet)."""
    raise NotLanded(
        "`sreagent eval` is evaluation on labelled telemetry, which is not built yet (issue 9); "
        "nothing was done"
    )
