"""The kernel's own view of an approved remediation: CPU throttling of the lab's cgroup
before and after, from its ``cpu.stat`` (independent of the collector and the verifier).

The role chain's verifier judges an executed action on the controller's telemetry; this is the
second witness a game day wants: the same question asked of the kernel directly, over two
equal windows, one just before the approval and one once the action has run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from sreagent.lab.live._host import LabHost
from sreagent.lab.live._systemctl import quota_and_period


def parse_cpu_stat(data: bytes) -> dict[str, int]:
    """``cpu.stat`` (v1 or v2) as a dict of its integer fields."""
    out: dict[str, int] = {}
    for line in data.splitlines():
        name, _, value = line.partition(b" ")
        if value.strip().isdigit():
            out[name.decode()] = int(value)
    return out


def read_quota(cpu_dir: Path) -> float | None:
    """The cgroup's CPU limit in cores (None when unlimited)."""
    quota, period = quota_and_period(cpu_dir)
    return None if quota < 0 else quota / period


class ThrottleWindow(BaseModel):
    """Throttled CFS periods over one window of the kernel's ``cpu.stat``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seconds: float
    periods: int
    """``nr_periods`` that elapsed (periods in which the cgroup had runnable work)."""
    throttled: int
    """``nr_throttled`` that elapsed."""
    quota_cores: float | None
    """The quota at the window's end."""

    @property
    def share(self) -> float | None:
        return self.throttled / self.periods if self.periods else None


class RemediationEffect(BaseModel):
    """Before/after throttling of the lab's cgroup as the kernel counts it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cgroup: str
    before: ThrottleWindow
    after: ThrottleWindow | None
    """None when the cgroup was gone before the after window (the fault ended)."""


def cpu_dir_of(host: LabHost, cgroup: str) -> Path:
    """The cgroup's directory in the hierarchy that holds its CPU limit."""
    mounts = host.cgroup_mounts()
    root = mounts.v1.get("cpu") or mounts.v2
    if root is None:
        raise FileNotFoundError("no cgroup CPU hierarchy")
    return root / cgroup


def throttle_window(cpu_dir: Path, seconds: float,
                    sleep: Callable[[float], None] = time.sleep) -> ThrottleWindow:
    """Count throttled periods over ``seconds`` (two reads of ``cpu.stat``)."""
    first = parse_cpu_stat((cpu_dir / "cpu.stat").read_bytes())
    sleep(seconds)
    last = parse_cpu_stat((cpu_dir / "cpu.stat").read_bytes())
    return ThrottleWindow(seconds=seconds,
                          periods=last.get("nr_periods", 0) - first.get("nr_periods", 0),
                          throttled=last.get("nr_throttled", 0) - first.get("nr_throttled", 0),
                          quota_cores=read_quota(cpu_dir))
