"""Replay of a stored evidence package with config overrides (the replay issue, 7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from sreagent.api.deps import ReadScope
from sreagent.controller.errors import NotImplementedYet

router = APIRouter(prefix="/api/v1", tags=["replay"])


@router.post("/replay", responses={501: {"description": "replay has not landed (issue 7)"}})
def replay(_: ReadScope, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Not built yet: answers 501 until the replay engine (issue 7) lands."""
    raise NotImplementedYet(
        "replay is not built yet (issue 7: deterministic replay); nothing was replayed"
    )
