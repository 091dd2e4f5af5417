"""Workflow runs: list, detail, events, artifacts, evidence, approve / reject / cancel."""

from __future__ import annotations

import io
import zipfile
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sreagent.api.deps import ApproveScope, ControllerDep, LeaderOnly, ReadScope
from sreagent.controller.errors import InvalidState, NotFound
from sreagent.controller.store import RUN_STATES

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
RunId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(max_length=2000)] = ""


def _public(run: dict[str, Any]) -> dict[str, Any]:
    return {
        **run,
        "links": {
            "artifacts": f"/api/v1/runs/{run['run_id']}/artifacts",
            "events": f"/api/v1/runs/{run['run_id']}/events",
            "evidence": f"/api/v1/runs/{run['run_id']}/evidence",
        },
    }


@router.get("")
def list_runs(
    controller: ControllerDep,
    _: ReadScope,
    state: Annotated[str | None, Query(pattern="^(" + "|".join(RUN_STATES) + ")$")] = None,
    host: Annotated[str | None, Query(max_length=253)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Runs, newest update first."""
    runs = controller.store.list_runs(state=state, host=host, limit=limit)
    return {"runs": [_public(r) for r in runs], "count": len(runs)}


@router.get("/{run_id}")
def get_run(run_id: RunId, controller: ControllerDep, _: ReadScope) -> dict[str, Any]:
    """One run with its approvals."""
    run = controller.store.get_run(run_id)
    return {
        **_public(run),
        "approvals": controller.store.list_approvals(run_id),
        "chain": [s.name for s in controller.engine.chain.steps],
    }


@router.get("/{run_id}/events")
def run_events(run_id: RunId, controller: ControllerDep, _: ReadScope) -> dict[str, Any]:
    """The run's event log, oldest first."""
    controller.store.get_run(run_id)
    return {"events": controller.store.list_events(run_id)}


@router.get("/{run_id}/artifacts")
def run_artifacts(run_id: RunId, controller: ControllerDep, _: ReadScope) -> dict[str, Any]:
    """The run's artifacts in chain order (full envelopes)."""
    controller.store.get_run(run_id)
    artifacts = controller.store.list_artifacts(run_id)
    return {"artifacts": [a.model_dump(mode="json") for a in artifacts], "count": len(artifacts)}


def _package_dir(controller: ControllerDep, run_id: str) -> Any:
    controller.store.get_run(run_id)
    path = controller.settings.runs_root / run_id
    if not (path / "manifest.json").exists():
        raise NotFound(
            f"run {run_id} has no evidence package yet (written when it completes)", field="run_id"
        )
    return path


@router.get("/{run_id}/evidence/files")
def evidence_files(run_id: RunId, controller: ControllerDep, _: ReadScope) -> dict[str, Any]:
    """The evidence package's files with sizes, hashes and row counts (from its manifest)."""
    from sreagent.evidence import read_manifest

    manifest = read_manifest(_package_dir(controller, run_id))
    return {
        "run_id": run_id,
        "format": manifest.format,
        "files": {name: entry.model_dump() for name, entry in manifest.files.items()},
        "manifest_sha256": manifest.manifest_sha256,
    }


@router.get(
    "/{run_id}/evidence",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
def evidence_zip(run_id: RunId, controller: ControllerDep, _: ReadScope) -> Response:
    """The evidence package as a zip (folder ``<run_id>/`` inside)."""
    path = _package_dir(controller, run_id)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(path.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                archive.write(file, f"{run_id}/{file.name}")
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{run_id}.zip"'},
    )


@router.post("/{run_id}/approve", dependencies=[LeaderOnly])
def approve(
    run_id: RunId,
    controller: ControllerDep,
    who: ApproveScope,
    decision: Annotated[Decision | None, Body()] = None,
) -> dict[str, Any]:
    """Approve the pending execution of a run awaiting approval; the run resumes."""
    return controller.resolve(
        run_id, approve=True, actor=who.name, reason=decision.reason if decision else ""
    )


@router.post("/{run_id}/reject", dependencies=[LeaderOnly])
def reject(
    run_id: RunId,
    controller: ControllerDep,
    who: ApproveScope,
    decision: Annotated[Decision | None, Body()] = None,
) -> dict[str, Any]:
    """Reject it: the run resumes with the actions skipped and completes."""
    return controller.resolve(
        run_id, approve=False, actor=who.name, reason=decision.reason if decision else ""
    )


@router.post("/{run_id}/cancel", dependencies=[LeaderOnly])
def cancel(run_id: RunId, controller: ControllerDep, who: ApproveScope) -> dict[str, Any]:
    """Cancel a pending run or one awaiting approval."""
    controller.store.get_run(run_id)
    if not controller.engine.cancel(run_id, actor=who.name):
        raise InvalidState(f"run {run_id} is neither pending nor awaiting approval")
    return {"run_id": run_id, "state": "cancelled"}
