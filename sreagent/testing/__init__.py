"""The shared test harness: telemetry windows, a fake clock, a role environment and a
recorded language model. Tests, notebooks and the service's own checks use the same fakes.

* :class:`WindowBuilder` builds real batch frames and an evidence view.
* :class:`FakeClock` is a logical clock a test can set.
* :class:`RoleEnvironment` runs one role with a context under the effects guard.
* :class:`RecordedLLM` serves canned model answers as the ``llm_complete`` activity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sreagent.actions.catalogue import DEFAULT_CATALOGUE, Catalogue
from sreagent.roles.knowledge import IncidentMemory, RunbookIndex
from sreagent.runtime import (
    Activities,
    ChainConfig,
    LiveActivities,
    LogicalClock,
    RoleContext,
    forbid_effects,
)
from sreagent.testing._window import START_NS, WindowBuilder

T = TypeVar("T")


class FakeClock(LogicalClock):
    """A logical clock a test sets by hand (it may also go back, unlike the real one)."""

    def set(self, ns: int) -> None:
        self._now = int(ns)


@dataclass
class RoleEnvironment:
    """Run single roles the way the chain does: a fresh context, effects forbidden."""

    config: ChainConfig = field(default_factory=ChainConfig)
    run_id: str = "test-run"
    now_ns: int = START_NS
    activities: Activities = field(default_factory=LiveActivities)
    catalogue: Catalogue = DEFAULT_CATALOGUE
    runbooks: RunbookIndex | None = None
    memory: IncidentMemory | None = None
    clock: FakeClock = field(init=False)
    ctx: RoleContext = field(init=False)

    def __post_init__(self) -> None:
        self.clock = FakeClock(self.now_ns)
        self.ctx = RoleContext(config=self.config, run_id=self.run_id, clock=self.clock,
                               activities=self.activities, catalogue=self.catalogue,
                               runbooks=self.runbooks, memory=self.memory)

    def run(self, role: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``role(*args, ctx=..., **kwargs)`` with clock, randomness and I/O forbidden."""
        with forbid_effects():
            return role(*args, ctx=self.ctx, **kwargs)


@dataclass
class RecordedLLM:
    """An ``llm_complete`` handler serving canned answers in order (then the last again).

    ``answers`` are message contents (strings); ``status`` lets a test simulate an outage.
    """

    answers: list[str]
    status: str = "ok"
    requests: list[Mapping[str, Any]] = field(default_factory=list)

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.requests.append(request)
        if self.status != "ok":
            return self.status, {"reason": f"simulated {self.status}"}
        content = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return "ok", {"content": content, "model": "recorded"}


__all__ = ["START_NS", "FakeClock", "RecordedLLM", "RoleEnvironment", "WindowBuilder"]
