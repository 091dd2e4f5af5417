"""The roles' runtime: context, evidence view, activities, configuration and effects guard.

The runner that calls the roles in order lives in :mod:`sreagent.chain`."""

from sreagent.runtime._activities import (
    Activities,
    ActivityNotRecorded,
    LiveActivities,
    ReplayActivities,
    activity_id,
)
from sreagent.runtime._config import (
    ChainConfig,
    DetectionConfig,
    DiskAwaitThresholds,
    LlmConfig,
    VerificationConfig,
)
from sreagent.runtime._context import LogicalClock, RoleContext
from sreagent.runtime._guard import EffectForbidden, allow_effects, forbid_effects
from sreagent.runtime._view import EventRow, EvidenceView, Series

__all__ = [
    "Activities",
    "ActivityNotRecorded",
    "ChainConfig",
    "DetectionConfig",
    "DiskAwaitThresholds",
    "EffectForbidden",
    "EventRow",
    "EvidenceView",
    "LiveActivities",
    "LlmConfig",
    "LogicalClock",
    "ReplayActivities",
    "RoleContext",
    "Series",
    "VerificationConfig",
    "activity_id",
    "allow_effects",
    "forbid_effects",
]
