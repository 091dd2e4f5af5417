"""``sreagent serve``: the controller service (issue 4)."""

from __future__ import annotations

import typer

from sreagent.cli import app
from sreagent.errors import NotLanded


@app.command(
    "serve",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def serve_command(ctx: typer.Context) -> None:
    """the controller service (not built yet)."""
    raise NotLanded(
        "`sreagent serve` is the controller service, which is not built yet (issue 4); "
        "nothing was done"
    )
