"""The latest analysis per host."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from sreagent.api.deps import ControllerDep, ReadScope

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])


@router.get("/rca")
def latest_rca(controller: ControllerDep, _: ReadScope) -> dict[str, Any]:
    """Per host, the newest incident report (and its run), by telemetry time."""
    reports = controller.store.latest_artifacts_by_host("incident_report")
    return {
        "hosts": {
            host: {
                "run_id": a.run_id,
                "incident_id": a.incident_id,
                "logical_time": a.logical_time,
                "artifact_id": a.artifact_id,
                "report": a.payload.model_dump(mode="json"),
            }
            for host, a in sorted(reports.items())
        },
        "count": len(reports),
    }
