"""perf source: system-wide software counters per CPU through ``perf_event_open``.

Context switches, CPU migrations and page faults are counted by the kernel per CPU
(``pid=-1, cpu=n``: every task on that CPU), which needs CAP_PERFMON/CAP_SYS_ADMIN or
``perf_event_paranoid <= 0``. Without it the source falls back to ``ctxt`` of /proc/stat and
``pgfault`` of /proc/vmstat (no migration count exists there) and says why.

The syscall is made through ctypes: there is no maintained Python binding for software
counters, and the call is one struct and one integer per counter.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import struct

from sreagent.collector._common import (
    NO_LABELS,
    Counters,
    Interval,
    KeptFiles,
    capability,
    os_reason,
    pick_values,
    rate,
    read_optional,
)
from sreagent.collector._source import Roots, SourceOutput
from sreagent.telemetry import SourceCapability

# include/uapi/linux/perf_event.h
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_PAGE_FAULTS = 2
PERF_COUNT_SW_CONTEXT_SWITCHES = 3
PERF_COUNT_SW_CPU_MIGRATIONS = 4
PERF_FLAG_FD_CLOEXEC = 8
PERF_FORMAT_GROUP = 8
PERF_ATTR_SIZE_VER0 = 64
"""The first published perf_event_attr; every kernel since 2.6.31 accepts it."""

COUNTERS = {
    "context_switches_per_second": PERF_COUNT_SW_CONTEXT_SWITCHES,
    "cpu_migrations_per_second": PERF_COUNT_SW_CPU_MIGRATIONS,
    "page_faults_per_second": PERF_COUNT_SW_PAGE_FAULTS,
}

_SYSCALL_NR = {"x86_64": 298, "aarch64": 241, "ppc64le": 319, "s390x": 331}
"""__NR_perf_event_open per architecture (arch/*/include/uapi/asm/unistd*.h)."""


def perf_attr(config: int, read_format: int = 0) -> bytes:
    """A perf_event_attr (VER0 layout) for an enabled software counter, counting user+kernel."""
    # type, size, config, sample_period, sample_type, read_format, flag bits (all zero:
    # enabled, not inherited, kernel and user counted), wakeup_events, bp_type, config1.
    return struct.pack(
        "=IIQQQQQIIQ",
        PERF_TYPE_SOFTWARE,
        PERF_ATTR_SIZE_VER0,
        config,
        0,
        0,
        read_format,
        0,
        0,
        0,
        0,
    )


def parse_group_read(raw: bytes, count: int) -> tuple[int, ...]:
    """The values of a PERF_FORMAT_GROUP read: ``u64 nr`` then ``nr`` u64 values (no
    enabled/running times and no ids were asked for)."""
    nr, *values = struct.unpack_from(f"={1 + count}Q", raw)
    if nr != count:
        raise OSError(0, f"perf group read gave {nr} counters, expected {count}")
    return tuple(values)


def parse_cpu_list(raw: bytes) -> list[int]:
    """A kernel CPU list (``0-3,5,7-8``) as numbers."""
    cpus: list[int] = []
    for part in raw.strip().split(b","):
        if not part:
            continue
        lo, _, hi = part.partition(b"-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


class PerfCounters:
    """Open software counters: per online CPU one group (context switches leading, CPU
    migrations and page faults in it), read with one ``read`` per CPU (PERF_FORMAT_GROUP)
    instead of one per counter and CPU. A kernel that refuses the group gets one fd per
    (counter, CPU) read one by one, as before session 5."""

    def __init__(self, cpus: list[int]) -> None:
        machine = platform.machine()
        if machine not in _SYSCALL_NR:
            raise OSError(0, f"perf_event_open syscall number unknown for {machine}")
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._nr = _SYSCALL_NR[machine]
        self._names = tuple(COUNTERS)
        self.leaders: list[int] = []
        """One group leader per CPU (grouped), or empty (one fd per counter and CPU)."""
        self.fds: dict[str, list[int]] = {name: [] for name in COUNTERS}
        try:
            self._open_groups(cpus)
        except OSError:
            self.close()
            try:
                self._open_single(cpus)
            except OSError:
                self.close()
                raise

    def _open(self, config: int, cpu: int, group_fd: int, read_format: int = 0) -> int:
        attr = ctypes.create_string_buffer(perf_attr(config, read_format), PERF_ATTR_SIZE_VER0)
        fd = self._syscall(
            ctypes.c_long(self._nr),
            attr,
            ctypes.c_int(-1),
            ctypes.c_int(cpu),
            ctypes.c_int(group_fd),
            ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC),
        )
        if fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
        return int(fd)

    def _open_groups(self, cpus: list[int]) -> None:
        first, *others = self._names
        for cpu in cpus:
            leader = self._open(COUNTERS[first], cpu, -1, PERF_FORMAT_GROUP)
            self.leaders.append(leader)
            self.fds[first].append(leader)
            for name in others:
                self.fds[name].append(self._open(COUNTERS[name], cpu, leader))

    def _open_single(self, cpus: list[int]) -> None:
        for name, config in COUNTERS.items():
            for cpu in cpus:
                self.fds[name].append(self._open(config, cpu, -1))

    def read(self) -> dict[str, int]:
        """Counter totals summed over CPUs."""
        if self.leaders:
            count = len(self._names)
            size = 8 * (1 + count)
            sums = [0] * count
            for leader in self.leaders:
                for i, value in enumerate(parse_group_read(os.read(leader, size), count)):
                    sums[i] += value
            return dict(zip(self._names, sums, strict=True))
        totals = {}
        for name, fds in self.fds.items():
            totals[name] = sum(struct.unpack("=Q", os.read(fd, 8))[0] for fd in fds)
        return totals

    def close(self) -> None:
        # Members before leaders does not matter to the kernel; every fd is closed once.
        for fds in self.fds.values():
            for fd in fds:
                with contextlib.suppress(OSError):  # already gone when a read failed
                    os.close(fd)
            fds.clear()
        self.leaders.clear()


class PerfSource:
    """``perf``: context switches, migrations and page faults per second."""

    name = "perf"
    optional = False

    def __init__(self, roots: Roots, *, use_perf: bool = True) -> None:
        self._stat_path = roots.proc / "stat"
        self._vmstat_path = roots.proc / "vmstat"
        self._counters = Counters()
        self._interval = Interval()
        self._perf: PerfCounters | None = None
        self._files = KeptFiles()
        self._reason = "disabled by configuration"
        if use_perf:
            try:
                online = read_optional(roots.sys / "devices/system/cpu/online")
                if online is None:
                    raise OSError(2, f"{roots.sys}/devices/system/cpu/online missing")
                self._perf = PerfCounters(parse_cpu_list(online))
                grouped = "one group per CPU" if self._perf.leaders else "one fd per counter"
                self._reason = f"perf_event_open software counters, all CPUs ({grouped})"
            except OSError as err:
                self._reason = (
                    f"perf_event_open: {os_reason(err)}; using /proc/stat and /proc/vmstat"
                )

    def capability(self) -> SourceCapability:
        return capability(self.name, "kernel" if self._perf else "fallback", self._reason)

    def read(self, now_ns: int) -> SourceOutput:
        seconds = self._interval.advance(now_ns)
        totals: dict[str, int] | None = None
        if self._perf is not None:
            try:
                totals = self._perf.read()
            except OSError as err:
                self.close()
                self._reason = (
                    f"perf counters failed while running: {os_reason(err)}; "
                    "using /proc/stat and /proc/vmstat"
                )
                self._counters = Counters()  # the fallback counts from a different origin
        if totals is None:
            stat = pick_values(self._files.read_required(str(self._stat_path)), (b"ctxt ",))
            vmstat = pick_values(self._files.read_required(str(self._vmstat_path)), (b"pgfault ",))
            totals = {
                "context_switches_per_second": stat[b"ctxt "],
                "page_faults_per_second": vmstat[b"pgfault "],
            }
        out = []
        for metric, total in totals.items():
            value = rate(self._counters.delta(metric, total, 64), seconds)
            if value is not None:
                out.append((now_ns, metric, "host", NO_LABELS, value))
        return SourceOutput(rows=out)

    def close(self) -> None:
        self._files.close()
        if self._perf is not None:
            self._perf.close()
            self._perf = None
