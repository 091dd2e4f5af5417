"""The role context: configuration, logical clock, seeded randomness, ids and activities.

Roles get everything non-deterministic from here. The clock is the telemetry window's end
(logical time), the random source is seeded from the run id, and ids come from a counter
hashed with the run id, so the same inputs always give the same artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sreagent.canonical import canonical_digest
from sreagent.evidence import ActivityRecord
from sreagent.runtime._activities import Activities, ReplayActivities
from sreagent.runtime._config import ChainConfig

if TYPE_CHECKING:
    from sreagent.actions import Catalogue
    from sreagent.roles.knowledge import IncidentMemory, RunbookIndex


class LogicalClock:
    """Telemetry time: set by the runner from the window, never read from the machine."""

    def __init__(self, now_ns: int):
        self._now = int(now_ns)

    def now(self) -> int:
        return self._now

    def advance_to(self, ns: int) -> None:
        if ns < self._now:
            raise ValueError("a logical clock never goes back")
        self._now = int(ns)


def seed_for(run_id: str) -> int:
    return int(canonical_digest({"seed": run_id})[:16], 16)


@dataclass
class RoleContext:
    """What a role may use besides its input artifacts and the evidence view."""

    config: ChainConfig
    run_id: str
    clock: LogicalClock
    activities: Activities = field(default_factory=lambda: ReplayActivities(()))
    catalogue: Catalogue | None = None
    runbooks: RunbookIndex | None = None
    memory: IncidentMemory | None = None
    incident_id: str | None = None
    """An incident id the caller already gave this run (the controller's); the analyzer
    uses it for the incident it opens instead of deriving one."""
    rng: np.random.Generator = field(init=False)
    used_activities: list[ActivityRecord] = field(default_factory=list)
    _counter: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(seed_for(self.run_id))

    def now(self) -> int:
        return self.clock.now()

    def new_id(self, prefix: str) -> str:
        """A fresh id, the same in every run with the same run id and call order."""
        self._counter += 1
        return f"{prefix}-{canonical_digest([self.run_id, prefix, self._counter])[:16]}"

    def activity(self, kind: str, key: str, request: dict[str, Any]) -> ActivityRecord:
        """Perform (live) or look up (replay) one activity, and remember it was used."""
        record = self.activities.perform(kind, key, request, self.clock.now())
        self.used_activities.append(record)
        return record

    def take_activity_ids(self) -> list[str]:
        """Ids of the activities used since the last call (for an artifact's envelope)."""
        ids = [r.activity_id for r in self.used_activities]
        self.used_activities = []
        return ids
