"""The role chain as one call: :class:`Chain` runs every role over a host window.

The controller's workflow engine and the replay engine use this interface (docs/roles.md,
"Calling the chain").
"""

from sreagent.chain._engine import RoleChain
from sreagent.chain._runner import (
    DEFAULT_RUNBOOKS,
    Chain,
    ChainResult,
    artifact_ids,
    live_activities,
    load_runbooks,
    run_id_for,
)
from sreagent.runtime import (
    ActivityNotRecorded,
    ChainConfig,
    EvidenceView,
    LiveActivities,
    ReplayActivities,
)

__all__ = [
    "DEFAULT_RUNBOOKS",
    "ActivityNotRecorded",
    "Chain",
    "ChainConfig",
    "ChainResult",
    "EvidenceView",
    "LiveActivities",
    "ReplayActivities",
    "RoleChain",
    "artifact_ids",
    "live_activities",
    "load_runbooks",
    "run_id_for",
]
