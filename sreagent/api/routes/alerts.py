"""Alertmanager webhook receiver: firing alerts open or enrich incidents, resolved ones close."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from sreagent.api.deps import ControllerDep, IngestScope, LeaderOnly

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Annotated[str, Field(pattern="^(firing|resolved)$")]
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    startsAt: str = ""
    endsAt: str = ""
    fingerprint: Annotated[str, Field(max_length=128)] = ""


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook payload (version 4)."""

    model_config = ConfigDict(extra="allow")

    version: str = "4"
    status: str = "firing"
    groupKey: Annotated[str, Field(max_length=1024)] = ""
    alerts: Annotated[list[AlertmanagerAlert], Field(max_length=200)] = []
    """At most 200 per delivery (set ``max_alerts: 200`` on the Alertmanager receiver)."""


@router.post("/alertmanager", dependencies=[LeaderOnly])
def alertmanager(
    payload: AlertmanagerWebhook, controller: ControllerDep, who: IngestScope
) -> dict[str, Any]:
    """Receive Alertmanager's webhook (configure it with a bearer token of scope ingest)."""
    return controller.receive_alerts(payload.model_dump(), actor=who.name)
