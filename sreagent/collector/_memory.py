"""Memory source: ``/proc/meminfo``, ``/proc/vmstat``, file handles from ``/proc/sys/fs/file-nr``.

Used memory is ``MemTotal - MemAvailable``: MemAvailable is the kernel's own estimate of what
can be given to a new workload without swapping (page cache and reclaimable slab included,
mm/show_mem.c), the same definition procps ``free`` uses since 4.0. Kernels older than 3.14
lack MemAvailable; there used = total - free - buffers - cached - SReclaimable.
"""

from __future__ import annotations

from sreagent.collector._common import (
    NO_LABELS,
    Counters,
    Interval,
    KeptFiles,
    capability,
    pick_values,
    rate,
    read_bytes,
)
from sreagent.collector._source import Roots, SourceOutput
from sreagent.errors import CorruptFile
from sreagent.telemetry import SourceCapability


def parse_meminfo(raw: bytes) -> dict[str, int]:
    """/proc/meminfo as bytes per key (``kB`` values multiplied by 1024; counts left as is)."""
    out: dict[str, int] = {}
    for line in raw.splitlines():
        key, _, rest = line.partition(b":")
        parts = rest.split()
        if not parts:
            continue
        value = int(parts[0])
        out[key.decode()] = value * 1024 if len(parts) > 1 and parts[1] == b"kB" else value
    return out


def parse_vmstat(raw: bytes) -> dict[str, int]:
    """/proc/vmstat as counter name -> value."""
    out: dict[str, int] = {}
    for line in raw.splitlines():
        key, _, value = line.partition(b" ")
        if value:
            out[key.decode()] = int(value)
    return out


def parse_file_nr(raw: bytes) -> tuple[int, int]:
    """(allocated, max) file handles from /proc/sys/fs/file-nr."""
    allocated, _unused, maximum = raw.split()[:3]
    return int(allocated), int(maximum)


def used_bytes(info: dict[str, int]) -> int:
    total = info["MemTotal"]
    if "MemAvailable" in info:
        return total - info["MemAvailable"]
    return (
        total
        - info.get("MemFree", 0)
        - info.get("Buffers", 0)
        - info.get("Cached", 0)
        - info.get("SReclaimable", 0)
    )


MEMINFO_KEYS = tuple(
    k + b":"
    for k in (
        b"MemTotal",
        b"MemFree",
        b"MemAvailable",
        b"Buffers",
        b"Cached",
        b"SReclaimable",
        b"SwapTotal",
        b"SwapFree",
    )
)
VMSTAT_KEYS = (b"pgmajfault ", b"pswpin ", b"pswpout ", b"oom_kill ")


def pick_meminfo(raw: bytes) -> dict[str, int]:
    """The /proc/meminfo fields the collector uses, in bytes (all are ``kB`` lines)."""
    return {k[:-1].decode(): v * 1024 for k, v in pick_values(raw, MEMINFO_KEYS).items()}


def pick_vmstat(raw: bytes) -> dict[str, int]:
    return {k[:-1].decode(): v for k, v in pick_values(raw, VMSTAT_KEYS).items()}


_VMSTAT_RATES = {
    "major_page_faults_per_second": "pgmajfault",
    "swap_in_pages_per_second": "pswpin",
    "swap_out_pages_per_second": "pswpout",
}


class MemorySource:
    """``memory``: used/available/cached, swap, major faults, OOM kills, file handles."""

    name = "memory"
    optional = False

    def __init__(self, roots: Roots) -> None:
        self._meminfo = roots.proc / "meminfo"
        self._vmstat = roots.proc / "vmstat"
        self._file_nr = roots.proc / "sys/fs/file-nr"
        self._counters = Counters()
        self._interval = Interval()
        self._files = KeptFiles()

    def capability(self) -> SourceCapability:
        try:
            read_bytes(self._meminfo)
        except OSError as err:
            return capability(self.name, "off", f"{self._meminfo}: {err.strerror}")
        return capability(self.name, "kernel", f"{self._meminfo}, {self._vmstat}")

    def read(self, now_ns: int) -> SourceOutput:
        seconds = self._interval.advance(now_ns)
        info = pick_meminfo(self._files.read_required(str(self._meminfo)))
        if "MemTotal" not in info:
            raise CorruptFile("no MemTotal line", path=str(self._meminfo))
        total = info["MemTotal"]
        used = used_bytes(info)
        cached = info.get("Cached", 0) + info.get("Buffers", 0) + info.get("SReclaimable", 0)
        out = [
            (now_ns, "memory_total_bytes", "host", NO_LABELS, total),
            (now_ns, "memory_used_bytes", "host", NO_LABELS, used),
            (now_ns, "memory_used_ratio", "host", NO_LABELS, used / total if total else 0.0),
            (now_ns, "memory_cached_bytes", "host", NO_LABELS, cached),
            (
                now_ns,
                "swap_used_bytes",
                "host",
                NO_LABELS,
                info.get("SwapTotal", 0) - info.get("SwapFree", 0),
            ),
        ]
        if "MemAvailable" in info:
            out.append((now_ns, "memory_available_bytes", "host", NO_LABELS, info["MemAvailable"]))
        raw_vmstat = self._files.read(str(self._vmstat))
        if raw_vmstat is not None:
            vmstat = pick_vmstat(raw_vmstat)
            if "oom_kill" in vmstat:  # since Linux 4.13
                out.append((now_ns, "oom_kills_total", "host", NO_LABELS, vmstat["oom_kill"]))
            for metric, key in _VMSTAT_RATES.items():
                if key in vmstat:
                    value = rate(self._counters.delta(key, vmstat[key], 64), seconds)
                    if value is not None:
                        out.append((now_ns, metric, "host", NO_LABELS, value))
        raw_file_nr = self._files.read(str(self._file_nr))
        if raw_file_nr is not None:
            allocated, maximum = parse_file_nr(raw_file_nr)
            out.append((now_ns, "fds_allocated", "host", NO_LABELS, allocated))
            if maximum > 0:
                out.append((now_ns, "fds_used_ratio", "host", NO_LABELS, allocated / maximum))
        return SourceOutput(rows=out)

    def close(self) -> None:
        self._files.close()
