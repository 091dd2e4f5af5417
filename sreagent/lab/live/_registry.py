"""The injectors by name."""

from __future__ import annotations

from typing import Any

from sreagent.lab.live._cgroup_throttle import CgroupThrottle
from sreagent.lab.live._cpu_hog import CpuHog
from sreagent.lab.live._errors import LabRefused
from sreagent.lab.live._fd_leak import FdLeak
from sreagent.lab.live._host import LabHost
from sreagent.lab.live._injector import Injector
from sreagent.lab.live._io_saturation import IoSaturation
from sreagent.lab.live._memory_oom import MemoryOom
from sreagent.lab.live._names import is_tag
from sreagent.lab.live._net_loss import NetLoss
from sreagent.lab.live._noisy_neighbour import NoisyNeighbour

INJECTORS: dict[str, type[Injector]] = {
    cls.name: cls
    for cls in (CpuHog, CgroupThrottle, MemoryOom, IoSaturation, NetLoss, FdLeak, NoisyNeighbour)
}


def make_injector(
    name: str, tag: str, duration_s: float, *, host: LabHost | None = None, **options: Any
) -> Injector:
    """An injector by name (refusing unknown names and malformed tags)."""
    cls = INJECTORS.get(name)
    if cls is None:
        raise LabRefused(f"unknown live scenario {name!r}; known: {', '.join(sorted(INJECTORS))}")
    if not is_tag(tag):
        raise LabRefused(f"run tag must be 8 lowercase hex digits, got {tag!r}")
    return cls(tag, duration_s, host, **options)
