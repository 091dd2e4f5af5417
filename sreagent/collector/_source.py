"""The contract every telemetry source of the collector implements.

A source is a small class in its own private module (``_cpu.py``, ``_netlink.py``, ``_ebpf``...)
with pure parsers over bytes beside it and its filesystem roots injected. The facade in
``sreagent.collector`` owns a list of sources, asks each for its capability once at start-up,
and calls :meth:`Source.read` every interval; a source that fails at read time reports it in its
capability instead of raising into the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from sreagent.telemetry import Event, Inventory, ProcessRow, Sample, SourceCapability


@dataclass(frozen=True)
class Roots:
    """Filesystem roots, injected so tests can point sources at captured trees."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    dev: Path = Path("/dev")


@dataclass
class SourceOutput:
    """What one source produced in one interval."""

    samples: list[Sample] = field(default_factory=list)
    processes: list[ProcessRow] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    inventory: Inventory | None = None


@runtime_checkable
class Source(Protocol):
    """One telemetry source."""

    name: str
    """Stable name used in the capability report (``cpu``, ``netlink``, ``ebpf``...)."""
    optional: bool
    """Optional sources are shed first when the collector is over its CPU budget."""

    def capability(self) -> SourceCapability:
        """Current mode (``kernel``, ``fallback`` or ``off``) and the reason for it."""
        ...

    def read(self, now_ns: int) -> SourceOutput:
        """Read one interval's worth of telemetry, stamped ``now_ns``."""
        ...

    def close(self) -> None:
        """Release sockets, file descriptors, eBPF programs."""
        ...
