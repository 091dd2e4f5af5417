"""Overall status of this controller."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from sreagent import __version__
from sreagent.api.deps import ControllerDep, ReadScope

router = APIRouter(prefix="/api/v1", tags=["status"])


@router.get("/status")
def status(controller: ControllerDep, _: ReadScope) -> dict[str, Any]:
    """Version, uptime, role, hot state size, run states and journal state."""
    lease = controller.leader
    return {
        "version": __version__,
        "uptime_s": round(time.time() - controller.started_at, 3),
        "node_id": controller.node_id,
        "ha": {
            "enabled": lease.enabled,
            "role": "leader" if controller.is_leader else "follower",
            "leader_url": lease.leader_url,
            "epoch": lease.epoch,
            "transitions": lease.transitions,
        },
        "hosts": len(controller.hot.hosts()),
        "hot_state": controller.hot.stats(),
        "runs": controller.store.run_state_counts(),
        "journal": {
            "root": str(controller.settings.journal_root),
            "pending_batches": controller.ingest.group_commit.pending,
            "flushes": controller.ingest.group_commit.flushes,
        },
        "auth": {"insecure_dev": controller.settings.insecure_dev},
    }
