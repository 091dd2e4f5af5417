"""The audit log: approvals, conflicts, leader transitions, webhook deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from sreagent.api.deps import AdminScope, ControllerDep

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("")
def audit_log(
    controller: ControllerDep,
    _: AdminScope,
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Newest first (needs the admin scope)."""
    entries = controller.store.list_audit(limit=limit, action=action)
    return {"entries": entries, "count": len(entries)}
