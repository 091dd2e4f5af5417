"""Liveness, readiness and Prometheus metrics (no token needed for health; /metrics needs read)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sreagent.api.deps import ControllerDep, ReadScope

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready"}})
def readyz(controller: ControllerDep) -> JSONResponse:
    """Ready to serve: started, and either leader or a follower that serves reads."""
    if not controller.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse(
        {"status": "ready", "role": "leader" if controller.is_leader else "follower"}
    )


@router.get("/metrics", response_class=Response)
def metrics(request: Request, _: ReadScope) -> Response:
    """The controller's own health in Prometheus text exposition."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
