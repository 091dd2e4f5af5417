"""The contract every telemetry source of the collector implements.

A source is a small class in its own private module (``_cpu.py``, ``_netlink.py``, ``_ebpf``...)
with pure parsers over bytes beside it and its filesystem roots injected. The facade in
``sreagent.collector`` owns a list of sources, asks each for its capability once at start-up,
and calls :meth:`Source.read` every interval; a source that fails at read time reports it in its
capability instead of raising into the loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from sreagent.collector._common import sample
from sreagent.telemetry import Event, Inventory, ProcessRow, Sample, SourceCapability


@dataclass(frozen=True)
class Roots:
    """Filesystem roots, injected so tests can point sources at captured trees."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    dev: Path = Path("/dev")


SampleRow = tuple[int, str, str, dict[str, str], float]
"""One sample as a plain tuple, in :class:`~sreagent.telemetry.Sample`'s field order:
``(ts_ns, metric, entity, labels, value)``. ``labels`` is sorted by key and never mutated
(sources share one dict between rows); ``value`` is a finite number (an ``int`` is sent as the
float it equals)."""


class SourceOutput:
    """What one source produced in one interval.

    Samples are kept as :data:`SampleRow` tuples in :attr:`rows`, not as pydantic models: a
    fast sample makes about 140 of them, and one frozen ``Sample`` costs about 2 us to build
    against 0.1 us for a tuple. The daemon encodes the rows straight into the batch's JSON
    (``sreagent.collector._wire``); :attr:`samples` builds the models for callers that want
    objects (tests, ``collect --once``).
    """

    __slots__ = ("events", "inventory", "processes", "rows")

    def __init__(
        self,
        samples: Iterable[Sample] = (),
        processes: list[ProcessRow] | None = None,
        events: list[Event] | None = None,
        inventory: Inventory | None = None,
        *,
        rows: list[SampleRow] | None = None,
    ) -> None:
        self.rows: list[SampleRow] = rows if rows is not None else []
        """Samples as tuples, in the order they were taken."""
        self.processes: list[ProcessRow] = processes if processes is not None else []
        self.events: list[Event] = events if events is not None else []
        self.inventory = inventory
        for one in samples:
            self.add(one)

    def add(self, one: Sample) -> None:
        """Append a sample model (a source that builds validated models: eBPF, kmsg)."""
        self.rows.append((one.ts_ns, one.metric, one.entity, one.labels, one.value))

    @property
    def samples(self) -> list[Sample]:
        """The rows as ``Sample`` models, built on each access (a new list: append to
        :attr:`rows` or use :meth:`add`, never to this)."""
        return samples_of(self.rows)

    def __repr__(self) -> str:
        return (
            f"SourceOutput(rows={len(self.rows)}, processes={len(self.processes)}, "
            f"events={len(self.events)}, inventory={self.inventory is not None})"
        )


def samples_of(rows: Iterable[SampleRow]) -> list[Sample]:
    """Trusted ``Sample`` models of rows the collector produced (see ``_common.sample``)."""
    return [sample(ts, metric, entity, value, labels) for ts, metric, entity, labels, value in rows]


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
