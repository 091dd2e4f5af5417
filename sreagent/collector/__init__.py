"""The node collector's sampling facade: every telemetry source behind one :class:`Sampler`.

    from sreagent.collector import Roots, Sampler, SamplerOptions

    sampler = Sampler(Roots(), SamplerOptions(process_every=5))
    sampler.capabilities()            # [SourceCapability(source="cpu", mode="kernel", ...), ...]
    out = sampler.sample(time.time_ns())   # SourceOutput: samples, processes, events, inventory
    sampler.shed_next()               # under CPU pressure: turn off the next optional source
    sampler.close()

Each source is a private module with pure parsers over bytes and injected roots (see
docs/collector.md, "Sources"). The facade only schedules them, merges their output, keeps one
failing source from taking the loop down, and sheds optional sources in a documented order.
Spooling, transport and the daemon loop live elsewhere and call this facade.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sreagent.collector._cgroup import CgroupSource
from sreagent.collector._common import capability, row
from sreagent.collector._cpu import CpuSource
from sreagent.collector._disk import DiskSource
from sreagent.collector._ib import IbSource
from sreagent.collector._inventory import InventorySource
from sreagent.collector._memory import MemorySource
from sreagent.collector._netlink import NetlinkSource
from sreagent.collector._nvml import NvmlSource
from sreagent.collector._perf import PerfSource
from sreagent.collector._procs import ProcessSource
from sreagent.collector._psi import PsiSource
from sreagent.collector._scrape import ScrapeSource, ScrapeTarget
from sreagent.collector._sockdiag import SockDiagSource
from sreagent.collector._source import Roots, SampleRow, Source, SourceOutput
from sreagent.collector._taskstats import TaskstatsSource
from sreagent.collector._tcp import TcpSource
from sreagent.errors import BadInput
from sreagent.telemetry import Inventory, SourceCapability

BUILTIN_SOURCES = (
    "cpu",
    "perf",
    "memory",
    "psi",
    "disk",
    "netlink",
    "tcp",
    "sock_diag",
    "cgroup",
    "taskstats",
    "processes",
    "nvml",
    "ib",
    "inventory",
    "scrape",
)
"""Names of the built-in sources, in the order they are read."""

SHED_ORDER = ("scrape", "ebpf", "taskstats", "processes", "sock_diag", "cgroup")
"""Optional sources in the order :meth:`Sampler.shed_next` turns them off under CPU pressure:
the dearest and least essential first. Extra optional sources not listed here are shed after
these, in the order they were added. Sources not marked optional are never shed."""


@dataclass(frozen=True)
class SamplerOptions:
    """How the sampler schedules its sources. Every field is documented in docs/collector.md."""

    process_every: int = 5
    """Full process scan (and taskstats) every N samples."""
    cgroup_every: int = 1
    """cgroup walk every N samples."""
    inventory_every: int = 3600
    """Hardware inventory every N samples (and on the first)."""
    scrape_every: int = 1
    """Scrape targets every N samples."""
    capability_every: int = 30
    """A source's own capability check runs again after N of its reads (and after its first
    read, and whenever a read fails or recovers); reports in between reuse the last answer."""
    top_n: int = 10
    """Processes enriched per ranking (CPU, RSS, IO)."""
    pss_top: int = 0
    """Largest processes by RSS whose PSS is read from smaps_rollup (costly; 0 = none)."""
    cgroup_max: int = 200
    """cgroups read per hierarchy and interval."""
    cgroup_depth: int = 4
    """Levels below the hierarchy root walked."""
    enabled: frozenset[str] | None = None
    """Only these built-in sources (None: all)."""
    disabled: frozenset[str] = frozenset()
    """Built-in sources left out."""
    kernel_interfaces: bool = True
    """False forces the procfs fallbacks (no perf_event_open, netlink, sock_diag, taskstats)."""
    scrape_targets: tuple[ScrapeTarget, ...] = ()

    def __post_init__(self) -> None:
        for key in (
            "process_every",
            "cgroup_every",
            "inventory_every",
            "scrape_every",
            "capability_every",
        ):
            if getattr(self, key) < 1:
                raise BadInput(f"{key} must be at least 1, got {getattr(self, key)}", field=key)
        for key in ("top_n", "pss_top", "cgroup_max", "cgroup_depth"):
            if getattr(self, key) < 0:
                raise BadInput(f"{key} must not be negative", field=key)
        unknown = (set(self.enabled or ()) | set(self.disabled)) - set(BUILTIN_SOURCES)
        if unknown:
            raise BadInput(
                f"unknown source(s) {sorted(unknown)}; known: {', '.join(BUILTIN_SOURCES)}",
                field="enabled" if self.enabled and unknown & set(self.enabled) else "disabled",
            )


@dataclass
class _Slot:
    source: Source
    every: int = 1
    due_in: int = 0
    """Samples until the next read; 0 means read now."""
    shed: bool = False
    error: str | None = None
    errors_total: int = 0
    cpu_ns: int = 0
    """Thread CPU time of the last read."""
    reads: int = 0
    cap: SourceCapability | None = None
    """The source's last capability answer, computed when it had ``cap_reads`` reads."""
    cap_reads: int = -1


@dataclass
class _State:
    slots: list[_Slot] = field(default_factory=list)
    inventory: Inventory | None = None
    last_costs: dict[str, float] = field(default_factory=dict)
    """CPU seconds of each source read during the last sample."""


class Sampler:
    """All telemetry sources of one host, sampled together.

    ``extra_sources`` are added after the built-in ones (the eBPF and /dev/kmsg sources are
    built elsewhere and passed in); ``sources`` replaces the built-in list entirely (tests).
    """

    def __init__(
        self,
        roots: Roots | None = None,
        options: SamplerOptions | None = None,
        *,
        extra_sources: Sequence[Source] = (),
        sources: Sequence[Source] | None = None,
    ) -> None:
        self.roots = roots or Roots()
        self.options = options or SamplerOptions()
        built = list(sources) if sources is not None else self._build(self.roots, self.options)
        every = {
            "processes": self.options.process_every,
            "cgroup": self.options.cgroup_every,
            "inventory": self.options.inventory_every,
            "scrape": self.options.scrape_every,
        }
        self._state = _State(
            slots=[_Slot(s, every.get(s.name, 1)) for s in [*built, *extra_sources]]
        )
        names = [slot.source.name for slot in self._state.slots]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            self.close()
            raise BadInput(f"two sources share the name(s) {sorted(duplicates)}")

    @staticmethod
    def _build(roots: Roots, options: SamplerOptions) -> list[Source]:
        wanted = set(options.enabled if options.enabled is not None else BUILTIN_SOURCES)
        wanted -= options.disabled
        kernel = options.kernel_interfaces
        out: list[Source] = []
        nvml = NvmlSource() if "nvml" in wanted else None
        ib = IbSource(roots) if "ib" in wanted or "inventory" in wanted else None
        taskstats = TaskstatsSource(roots, use_netlink=kernel) if "taskstats" in wanted else None
        # Read before the cgroup source, which takes the v2 root's pressure from it.
        psi = PsiSource(roots) if "psi" in wanted else None
        for name in BUILTIN_SOURCES:
            if name not in wanted:
                continue
            if name == "cpu":
                out.append(CpuSource(roots))
            elif name == "perf":
                out.append(PerfSource(roots, use_perf=kernel))
            elif name == "memory":
                out.append(MemorySource(roots))
            elif name == "psi" and psi is not None:
                out.append(psi)
            elif name == "disk":
                out.append(DiskSource(roots))
            elif name == "netlink":
                out.append(NetlinkSource(roots, use_netlink=kernel))
            elif name == "tcp":
                out.append(TcpSource(roots))
            elif name == "sock_diag":
                out.append(SockDiagSource(roots, use_netlink=kernel))
            elif name == "cgroup":
                out.append(
                    CgroupSource(
                        roots,
                        max_depth=options.cgroup_depth,
                        max_cgroups=options.cgroup_max,
                        host_pressure=psi.pressure_at if psi is not None else None,
                    )
                )
            elif name == "taskstats" and taskstats is not None:
                out.append(taskstats)
            elif name == "processes":
                out.append(
                    ProcessSource(
                        roots, top_n=options.top_n, pss_top=options.pss_top, taskstats=taskstats
                    )
                )
            elif name == "nvml" and nvml is not None:
                out.append(nvml)
            elif name == "ib" and ib is not None and "ib" in wanted:
                out.append(ib)
            elif name == "inventory":
                out.append(
                    InventorySource(
                        roots,
                        gpus=nvml.inventory if nvml is not None else None,
                        ib_ports=ib.inventory if ib is not None else None,
                    )
                )
            elif name == "scrape" and options.scrape_targets:
                out.append(ScrapeSource(list(options.scrape_targets)))
        return out

    @property
    def source_names(self) -> list[str]:
        return [slot.source.name for slot in self._state.slots]

    @property
    def inventory(self) -> Inventory | None:
        """The latest hardware inventory (None before the first sample)."""
        return self._state.inventory

    def capabilities(self) -> list[SourceCapability]:
        """Mode and reason of every source; shed and failing sources say so."""
        out = []
        every = self.options.capability_every
        for slot in self._state.slots:
            name = slot.source.name
            if slot.shed:
                out.append(capability(name, "off", "shed under CPU pressure"))
                continue
            # Several sources check by reading their files again, and the daemon asks every
            # interval: about 1 ms of CPU for the whole set here, for answers that change
            # rarely. Asked again after the first read, every ``capability_every`` reads, and
            # when a read fails or recovers (which clears ``cap``).
            stale = (
                slot.cap is None
                or (slot.cap_reads == 0 and slot.reads > 0)
                or slot.reads - slot.cap_reads >= every
            )
            cap = slot.cap
            if stale or cap is None:
                try:
                    cap = slot.cap = slot.source.capability()
                except Exception as err:  # a broken capability check must not hide the others
                    slot.cap = None
                    reason = f"capability check failed: {_describe(err)}"
                    out.append(capability(name, "off", reason))
                    continue
                slot.cap_reads = slot.reads
            if slot.error is not None:
                cap = capability(
                    name, "off", f"last read failed: {slot.error} (was {cap.mode}: {cap.reason})"
                )
            out.append(cap)
        return out

    def sample(self, now_ns: int, *, full: bool = False) -> SourceOutput:
        """Read every source that is due and merge their output.

        ``full`` reads every source regardless of its interval (``collect --once``). A source
        that raises is recorded (its capability turns ``off`` with the error, and
        ``collector_source_errors_total`` counts it) and the others carry on.
        """
        merged = SourceOutput()
        costs = self._state.last_costs = {}
        # One thread-CPU clock read between two sources instead of two around each (the
        # clock is a syscall, not vDSO); the bookkeeping between reads is charged to the next.
        clock = time.thread_time_ns()
        for slot in self._state.slots:
            if slot.shed:
                continue
            if not full and slot.due_in > 0:
                slot.due_in -= 1
                continue
            slot.due_in = slot.every - 1
            slot.reads += 1
            try:
                got = slot.source.read(now_ns)
            except Exception as err:  # the loop outlives any one source
                if slot.error is None:
                    slot.cap = None  # its capability may have changed with the failure
                slot.error = _describe(err)
                slot.errors_total += 1
                continue
            finally:
                now = time.thread_time_ns()
                slot.cpu_ns = now - clock
                clock = now
                costs[slot.source.name] = slot.cpu_ns / 1e9
            if slot.error is not None:
                slot.cap = None  # recovered
            slot.error = None
            merged.rows.extend(got.rows)
            merged.processes.extend(got.processes)
            merged.events.extend(got.events)
            if got.inventory is not None:
                self._state.inventory = got.inventory
        for slot in self._state.slots:
            if slot.errors_total:
                merged.rows.append(
                    row(
                        now_ns,
                        "collector_source_errors_total",
                        "collector",
                        slot.errors_total,
                        {"source": slot.source.name},
                    )
                )
        merged.inventory = self._state.inventory
        return merged

    def prime(self, now_ns: int) -> None:
        """Read every source once and discard the output, so the next sample has rates."""
        self.sample(now_ns, full=True)

    def source_cpu_seconds(self) -> dict[str, float]:
        """Thread CPU seconds of each source read during the last :meth:`sample` call
        (sources not due, or shed, are absent), for budgeting and the benchmark."""
        return dict(self._state.last_costs)

    def shed(self, names: Iterable[str]) -> list[str]:
        """Turn the named optional sources off; returns those newly shed.

        Raises :class:`BadInput` for an unknown name or a source that is not optional.
        """
        by_name = {slot.source.name: slot for slot in self._state.slots}
        newly = []
        for name in names:
            slot = by_name.get(name)
            if slot is None:
                raise BadInput(f"no source named {name!r}; have {', '.join(by_name)}")
            if not slot.source.optional:
                raise BadInput(f"source {name!r} is not optional and cannot be shed")
            if not slot.shed:
                slot.shed = True
                _set_active(slot.source, False)
                newly.append(name)
        return newly

    def shed_next(self) -> str | None:
        """Shed the next optional source in :data:`SHED_ORDER`; None when nothing is left."""
        for name in self.shed_order():
            if self.shed([name]):
                return name
        return None

    def shed_order(self) -> list[str]:
        """The optional sources present, in the order they would be shed."""
        optional = [s.source.name for s in self._state.slots if s.source.optional]
        listed = [n for n in SHED_ORDER if n in optional]
        return listed + [n for n in optional if n not in listed]

    def restore(self, names: Iterable[str] | None = None) -> list[str]:
        """Turn shed sources back on (all when ``names`` is None); returns those restored."""
        wanted = None if names is None else set(names)
        back = []
        for slot in self._state.slots:
            if slot.shed and (wanted is None or slot.source.name in wanted):
                slot.shed = False
                slot.due_in = 0
                slot.cap = None
                _set_active(slot.source, True)
                back.append(slot.source.name)
        return back

    @property
    def shed_sources(self) -> list[str]:
        return [slot.source.name for slot in self._state.slots if slot.shed]

    def close(self) -> None:
        """Close every source (sockets, perf fds, NVML); errors are ignored."""
        for slot in self._state.slots:
            # Closing must reach every source, whatever one of them raises.
            with contextlib.suppress(Exception):
                slot.source.close()

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _set_active(source: Source, active: bool) -> None:
    # Sources that serve another source (taskstats feeds the process scan) expose ``active``.
    if hasattr(source, "active"):
        source.active = active


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:1000]


__all__ = [
    "BUILTIN_SOURCES",
    "SHED_ORDER",
    "Roots",
    "SampleRow",
    "Sampler",
    "SamplerOptions",
    "ScrapeTarget",
    "Source",
    "SourceOutput",
]
