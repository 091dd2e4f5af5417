"""CPU source: ``/proc/stat`` totals and per CPU, ``/proc/loadavg``.

Utilisation is the share of jiffies not spent idle or in iowait over the interval (iowait is
reported on its own: a CPU waiting for IO is idle and could run something else). ``guest`` and
``guest_nice`` are already included in ``user`` and ``nice`` (kernel/sched/cputime.c), so they
are not added to the total again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from sreagent.collector._common import (
    NO_LABELS,
    KeptFiles,
    capability,
    pick_values,
    read_bytes,
)
from sreagent.collector._source import Roots, SourceOutput
from sreagent.errors import CorruptFile
from sreagent.telemetry import SourceCapability

MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
"""The first eight columns of a ``cpu`` line of /proc/stat (Documentation/filesystems/proc.rst)."""


class CpuTimes(NamedTuple):
    """Jiffies per mode since boot for one CPU or all of them (a tuple: built for every CPU
    at every read, where a frozen dataclass costs a setattr per field)."""

    user: int = 0
    nice: int = 0
    system: int = 0
    idle: int = 0
    iowait: int = 0
    irq: int = 0
    softirq: int = 0
    steal: int = 0

    @property
    def total(self) -> int:
        return sum(self)

    def as_tuple(self) -> tuple[int, ...]:
        return tuple(self)


@dataclass(frozen=True)
class ProcStat:
    """The parts of /proc/stat the collector uses."""

    total: CpuTimes
    per_cpu: dict[int, CpuTimes] = field(default_factory=dict)
    context_switches: int = 0
    processes_forked: int = 0
    procs_running: int = 0
    procs_blocked: int = 0


def parse_stat(raw: bytes) -> ProcStat:
    """Parse /proc/stat.

    The ``cpu`` lines come first (fs/proc/stat.c prints them before anything else); the
    four single-number lines wanted after them are found with ``find``, so the long
    ``intr`` and ``softirq`` lines (most of the file) are never split or copied.
    """
    total: CpuTimes | None = None
    per_cpu: dict[int, CpuTimes] = {}
    for line in raw.split(b"\n", _cpu_lines_hint(raw)):
        if not line.startswith(b"cpu"):
            break
        parts = line.split()
        nums = [int(x) for x in parts[1:9]]
        nums += [0] * (8 - len(nums))  # pre-2.6.11 kernels lack steal
        times = CpuTimes(*nums)
        if parts[0] == b"cpu":
            total = times
        else:
            per_cpu[int(parts[0][3:])] = times
    if total is None:
        raise CorruptFile("no aggregate 'cpu' line", path="/proc/stat")
    values = pick_values(raw, _STAT_KEYS)
    return ProcStat(
        total=total,
        per_cpu=per_cpu,
        context_switches=values.get(b"ctxt ", 0),
        processes_forked=values.get(b"processes ", 0),
        procs_running=values.get(b"procs_running ", 0),
        procs_blocked=values.get(b"procs_blocked ", 0),
    )


_STAT_KEYS = (b"ctxt ", b"processes ", b"procs_running ", b"procs_blocked ")


def _cpu_lines_hint(raw: bytes) -> int:
    """How many splits reach past the ``cpu`` lines: one per ``cpu`` line, plus one."""
    return raw.count(b"\ncpu") + 2


def parse_loadavg(raw: bytes) -> tuple[float, float, float]:
    """The three load averages of /proc/loadavg."""
    parts = raw.split()
    if len(parts) < 3:
        raise CorruptFile("expected three load averages", path="/proc/loadavg")
    return float(parts[0]), float(parts[1]), float(parts[2])


def mode_shares(prev: CpuTimes, cur: CpuTimes) -> dict[str, float] | None:
    """Share of the interval per mode; None when the counters went backwards or did not move.

    A CPU that went offline and came back restarts its counters; that interval has no shares.
    """
    deltas = [c - p for c, p in zip(cur, prev, strict=True)]
    if any(d < 0 for d in deltas):
        return None
    span = sum(deltas)
    if span <= 0:
        return None
    return {mode: d / span for mode, d in zip(MODES, deltas, strict=True)}


def busy_share(shares: dict[str, float]) -> float:
    return 1.0 - shares["idle"] - shares["iowait"]


class CpuSource:
    """``cpu``: utilisation per mode and per core, load, run queue."""

    name = "cpu"
    optional = False

    def __init__(self, roots: Roots) -> None:
        self._stat_path = roots.proc / "stat"
        self._loadavg_path = roots.proc / "loadavg"
        self._prev: ProcStat | None = None
        self._files = KeptFiles()

    def capability(self) -> SourceCapability:
        try:
            read_bytes(self._stat_path)
        except OSError as err:
            return capability(self.name, "off", f"{self._stat_path}: {err.strerror}")
        return capability(self.name, "kernel", f"{self._stat_path}")

    def read(self, now_ns: int) -> SourceOutput:
        stat = parse_stat(self._files.read_required(str(self._stat_path)))
        load1, _, _ = parse_loadavg(self._files.read_required(str(self._loadavg_path)))
        out = [
            (now_ns, "load_average_1m", "host", NO_LABELS, load1),
            (now_ns, "procs_running", "host", NO_LABELS, stat.procs_running),
            (now_ns, "procs_blocked", "host", NO_LABELS, stat.procs_blocked),
        ]
        prev, self._prev = self._prev, stat
        if prev is not None:
            shares = mode_shares(prev.total, stat.total)
            if shares is not None:
                out.append((now_ns, "cpu_utilisation_ratio", "host", NO_LABELS, busy_share(shares)))
                out.append((now_ns, "cpu_iowait_ratio", "host", NO_LABELS, shares["iowait"]))
                out.append((now_ns, "cpu_steal_ratio", "host", NO_LABELS, shares["steal"]))
                for mode, share in shares.items():
                    out.append((now_ns, "cpu_mode_ratio", "host", {"mode": mode}, share))
            for cpu, times in stat.per_cpu.items():
                before = prev.per_cpu.get(cpu)
                core = mode_shares(before, times) if before is not None else None
                if core is not None:
                    out.append(
                        (
                            now_ns,
                            "cpu_core_utilisation_ratio",
                            f"cpu/{cpu}",
                            NO_LABELS,
                            busy_share(core),
                        )
                    )
        return SourceOutput(rows=out)

    def close(self) -> None:
        self._files.close()
