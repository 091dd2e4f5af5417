"""``sreagent report``: the papermill reports (issue 8)."""

from __future__ import annotations

import typer

from sreagent.cli import app
from sreagent.errors import NotLanded


@app.command(
    "report",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def report_command(ctx: typer.Context) -> None:
    """the papermill reports (not built yet)."""
    raise NotLanded(
        "`sreagent report` is the papermill reports, which is not built yet (issue 8); "
        "nothing was done"
    )
