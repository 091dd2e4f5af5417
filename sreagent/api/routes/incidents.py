"""Incidents opened by the detector or by Alertmanager."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from sreagent.api.deps import ControllerDep, ReadScope

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])


@router.get("")
def list_incidents(
    controller: ControllerDep,
    _: ReadScope,
    state: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    incidents = controller.store.list_incidents(state=state, limit=limit)
    return {"incidents": incidents, "count": len(incidents)}


@router.get("/{incident_id}")
def get_incident(
    incident_id: Annotated[str, Path(min_length=1, max_length=256)],
    controller: ControllerDep,
    _: ReadScope,
) -> dict[str, Any]:
    incident = controller.store.get_incident(incident_id)
    runs = [
        r
        for r in controller.store.list_runs(host=incident["host"], limit=1000)
        if r["incident_id"] == incident_id
    ]
    return {**incident, "runs": [r["run_id"] for r in runs]}
