"""FastAPI dependencies as ``Annotated`` aliases: the controller, settings and scoped auth.

All of them are ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency on
its thread pool, and four thread hand-offs per request cost more than the work itself (a
token hash and a few attribute reads) on the ingest path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from sreagent.api.auth import Principal, authenticate
from sreagent.controller.errors import NotLeader
from sreagent.controller.service import Controller
from sreagent.controller.settings import Settings


async def get_controller(request: Request) -> Controller:
    controller: Controller = request.app.state.controller
    return controller


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ControllerDep = Annotated[Controller, Depends(get_controller)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _scoped(scope: str):  # type: ignore[no-untyped-def]
    async def dependency(
        settings: SettingsDep,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Principal:
        principal = authenticate(settings, authorization)
        principal.require(scope)
        return principal

    return dependency


IngestScope = Annotated[Principal, Depends(_scoped("ingest"))]
ReadScope = Annotated[Principal, Depends(_scoped("read"))]
ApproveScope = Annotated[Principal, Depends(_scoped("approve"))]
AdminScope = Annotated[Principal, Depends(_scoped("admin"))]


async def require_leader(controller: ControllerDep) -> None:
    """Writes happen on the leader only; a follower names it."""
    if not controller.is_leader:
        raise NotLeader(
            "this controller is a follower; send writes to the leader",
            leader=controller.leader.leader_url or None,
        )


LeaderOnly = Depends(require_leader)
