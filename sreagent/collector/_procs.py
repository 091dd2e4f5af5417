"""Process source: a full scan of ``/proc/<pid>`` on its own, slower interval.

Every process gets a row from ``/proc/<pid>/stat`` (one read: state, parent, CPU ticks,
threads, RSS) and, where readable, ``/proc/<pid>/io``. The processes at the top by CPU, by
RSS and by IO rate are then enriched: command line, cgroup, open fds against their
RLIMIT_NOFILE, delay accounting from taskstats, and on request (``pss_top``) PSS from
``smaps_rollup`` for the largest processes by RSS: the kernel walks every page table of the
process for it, measured at 3-10 ms of CPU for one large process here, so it is off by default.

Field positions of /proc/<pid>/stat: proc(5), counted after the closing parenthesis of
``comm`` because the name itself may contain spaces and parentheses.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import resource
from typing import Any, NamedTuple

from sreagent.collector._common import (
    Interval,
    KeptFiles,
    capability,
    pick_values,
    read_optional,
    trusted,
)
from sreagent.collector._common import row as sample_row
from sreagent.collector._source import Roots, SampleRow, SourceOutput
from sreagent.collector._taskstats import TaskstatsSource
from sreagent.telemetry import ProcessRow, SourceCapability

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MAX_CMDLINE = 1024


_O_READ = os.O_RDONLY | os.O_CLOEXEC
_SMALL = 4096
"""/proc/<pid>/stat and io fit in one read of this size (stat is under 1 KiB even with a
64-bit kernel's widest numbers)."""


_IO_DENIED = -2
"""In place of the io descriptor: opening it was refused (EACCES)."""


def max_kept_processes() -> int:
    """How many processes' files the scan keeps open: a quarter of the soft RLIMIT_NOFILE
    goes to it (two descriptors per process), so sockets and the spool never run short."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(0, soft // 8)


class PidFiles:
    """``/proc/<pid>/stat`` and ``/proc/<pid>/io`` kept open from one scan to the next.

    Both are seq_files that the kernel regenerates on a read from offset 0, so a kept
    descriptor re-read with ``pread`` answers like a fresh open, for one syscall instead of
    three (open, read, close) per file and process: on this project's machines the scan of
    300 processes went from about 2,100 syscalls to 900. A kept descriptor is bound to the
    process it was opened for, not to the number: once that process exits, reads fail with
    ESRCH, so a reused pid is reopened by path and never read through a stale descriptor.
    ``io`` is permission-checked at each read (ptrace access), as on open. Beyond
    ``max_processes`` (see :func:`max_kept_processes`) files are opened and closed per scan.
    """

    __slots__ = ("_fds", "_max", "_proc")

    def __init__(self, proc: str, *, max_processes: int) -> None:
        self._proc = proc
        self._max = max_processes
        self._fds: dict[int, tuple[int, int]] = {}
        """pid -> (stat fd, io fd, or -1 when io could not be opened, ``_IO_DENIED``)."""

    def read(self, pid: int) -> tuple[bytes, bytes | None, bool] | None:
        """``(stat, io or None, io denied)`` of a live process, None when it is gone."""
        fds = self._fds.get(pid)
        if fds is not None:
            try:
                raw = os.pread(fds[0], _SMALL, 0)
            except OSError:
                raw = b""
            if raw:
                io_fd = fds[1]
                if io_fd == _IO_DENIED:
                    # Denied at open (another user's process, without CAP_SYS_PTRACE): ask
                    # again, as a fresh scan would; the process may have changed its uid.
                    io_fd = self._open_io(pid)
                    if io_fd != _IO_DENIED:
                        self._fds[pid] = (fds[0], io_fd)
                    else:
                        return raw, None, True
                raw_io, denied = _pread_io(io_fd)
                return raw, raw_io, denied
            self.forget(pid)  # exited (or the number now names a new process: reopen)
        return self._open(pid)

    def stat(self, pid: int) -> bytes | None:
        """A kept process's current stat; None when it is not kept or has gone (then
        :meth:`read` reopens by path, or finds it gone)."""
        fds = self._fds.get(pid)
        if fds is None:
            return None
        try:
            return os.pread(fds[0], _SMALL, 0) or None
        except OSError:
            return None

    def io(self, pid: int) -> tuple[bytes | None, bool]:
        """``(io or None, denied)`` of a kept process, after :meth:`stat` answered for it."""
        fds = self._fds.get(pid)
        if fds is None:
            return None, False
        io_fd = fds[1]
        if io_fd == _IO_DENIED:
            io_fd = self._open_io(pid)  # asked again, as in read()
            if io_fd == _IO_DENIED:
                return None, True
            self._fds[pid] = (fds[0], io_fd)
        return _pread_io(io_fd)

    def _open(self, pid: int) -> tuple[bytes, bytes | None, bool] | None:
        base = f"{self._proc}/{pid}"
        try:
            fd = os.open(f"{base}/stat", _O_READ)
        except OSError:
            return None
        try:
            raw = os.read(fd, _SMALL)
        except OSError:
            raw = b""
        if not raw:
            os.close(fd)
            return None
        io_fd = self._open_io(pid)
        raw_io, denied = (None, True) if io_fd == _IO_DENIED else _pread_io(io_fd)
        if len(self._fds) < self._max:
            self._fds[pid] = (fd, io_fd)
        else:
            os.close(fd)
            if io_fd >= 0:
                os.close(io_fd)
        return raw, raw_io, denied

    def _open_io(self, pid: int) -> int:
        """A descriptor of /proc/<pid>/io, ``_IO_DENIED``, or -1 (exited, or no accounting)."""
        try:
            return os.open(f"{self._proc}/{pid}/io", _O_READ)
        except PermissionError:
            return _IO_DENIED
        except OSError:
            return -1

    def forget(self, pid: int) -> None:
        fds = self._fds.pop(pid, None)
        if fds is not None:
            for fd in fds:
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def forget_unless(self, alive: set[int]) -> None:
        """Close the files of processes no longer listed in /proc."""
        for pid in [p for p in self._fds if p not in alive]:
            self.forget(pid)

    def __len__(self) -> int:
        return len(self._fds)

    def close(self) -> None:
        for pid in list(self._fds):
            self.forget(pid)


def _pread_io(fd: int) -> tuple[bytes | None, bool]:
    """``(content or None, denied)`` of a /proc/<pid>/io descriptor (-1: none)."""
    if fd < 0:
        return None, False
    try:
        return os.pread(fd, _SMALL, 0) or None, False
    except PermissionError:
        return None, True
    except OSError:
        return None, False


class PidStat(NamedTuple):
    """The fields of /proc/<pid>/stat the scan uses (a tuple: 300 of them per scan)."""

    comm: str
    state: str
    ppid: int
    cpu_ticks: int
    """utime + stime, in clock ticks."""
    threads: int
    start_ticks: int
    """Start time after boot; with the pid it identifies a process across pid reuse."""
    rss_pages: int


def parse_pid_stat(raw: bytes) -> PidStat:
    close = raw.rfind(b")")
    comm = raw[raw.find(b"(") + 1 : close].decode("utf-8", "replace")
    # Only the first 22 fields after comm are used; not splitting the other thirty saves
    # about a third of the parse, 300 times per scan.
    f = raw[close + 2 :].split(None, 22)
    return PidStat(
        comm=comm[:64],
        state=f[0].decode()[:1],
        ppid=int(f[1]),
        cpu_ticks=int(f[11]) + int(f[12]),
        threads=int(f[17]),
        start_ticks=int(f[19]),
        rss_pages=int(f[21]),
    )


_IO_KEYS = (b"read_bytes:", b"write_bytes:")


def parse_pid_io(raw: bytes) -> tuple[int, int] | None:
    """(read_bytes, write_bytes) that reached the storage layer, from /proc/<pid>/io.

    None when the file lacks them (a kernel without CONFIG_TASK_IO_ACCOUNTING).
    """
    f = raw.split()
    # The fixed layout of fs/proc/base.c do_io_accounting(): rchar, wchar, syscr, syscw,
    # read_bytes, write_bytes, cancelled_write_bytes, each "name: value".
    if len(f) >= 12 and f[8] == b"read_bytes:" and f[10] == b"write_bytes:":
        return int(f[9]), int(f[11])
    got = pick_values(raw, _IO_KEYS)
    if len(got) < 2:
        return None
    return got[b"read_bytes:"], got[b"write_bytes:"]


def parse_cmdline(raw: bytes) -> str:
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")[:MAX_CMDLINE]


def parse_nofile_limit(raw: bytes) -> int | None:
    """Soft RLIMIT_NOFILE from /proc/<pid>/limits (None when unlimited)."""
    for line in raw.splitlines():
        if line.startswith(b"Max open files"):
            soft = line[len(b"Max open files") :].split()[0]
            return None if soft == b"unlimited" else int(soft)
    return None


def parse_smaps_rollup_pss(raw: bytes) -> int | None:
    for line in raw.splitlines():
        if line.startswith(b"Pss:"):
            return int(line.split()[1]) * 1024
    return None


def pick_cgroup(raw: bytes) -> str:
    """The cgroup path that names the workload: v1 ``memory``/``cpu`` hierarchy, else v2.

    On hybrid hosts the v2 line (``0::``) often stays at ``/`` while the v1 controllers carry
    the container's path.
    """
    by_controller: dict[str, str] = {}
    for line in raw.splitlines():
        parts = line.split(b":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(b","):
            by_controller[controller.decode()] = parts[2].decode("utf-8", "replace")
    for key in ("memory", "cpu", ""):
        path = by_controller.get(key)
        if path and path != "/":
            return path[:512]
    return by_controller.get("", by_controller.get("memory", ""))[:512]


class _Prev(NamedTuple):
    """The previous scan's reading of one process (a tuple: 300 of them per scan)."""

    start_ticks: int
    cpu_ticks: int
    io: tuple[int, int] | None
    io_ns: int
    """When ``io`` was read (it is not read for a process whose stat did not change)."""
    raw: bytes
    """The /proc/<pid>/stat bytes that row was built from."""
    row: dict[str, Any]
    """The row before enrichment (top-N fields at their defaults)."""
    io_denied: bool


class ProcessSource:
    """``processes``: process rows for the whole host, details for the top ones."""

    name = "processes"
    optional = True

    def __init__(
        self,
        roots: Roots,
        *,
        top_n: int = 10,
        pss_top: int = 0,
        taskstats: TaskstatsSource | None = None,
    ) -> None:
        self._proc = roots.proc
        self._proc_s = str(roots.proc)
        self._top_n = top_n
        self._pss_top = pss_top
        self._taskstats = taskstats
        self._prev: dict[int, _Prev] = {}
        self._interval = Interval()
        self._io_denied: list[int] = []
        self._io_seen = 0
        self._kept = PidFiles(self._proc_s, max_processes=max_kept_processes())
        # The top processes change little from one scan to the next: their cmdline, cgroup
        # and limits files are kept open too (three per process and ranking).
        self._top_files = KeptFiles(limit=9 * top_n)

    def capability(self) -> SourceCapability:
        if not (self._proc / "self/stat").exists():
            return capability(self.name, "off", f"{self._proc} is not a mounted procfs")
        paths = f"{self._proc}/<pid>/{{stat,io,cmdline,cgroup,limits,fd}}"
        if not self._io_denied:
            return capability(self.name, "kernel", paths)
        denied = (
            f"/proc/<pid>/io unreadable for {len(self._io_denied)} of {self._io_seen} processes "
            f"(pids {', '.join(map(str, self._io_denied[:3]))}"
            f"{', ...' if len(self._io_denied) > 3 else ''}): no IO ranking for them"
        )
        if os.geteuid() != 0:
            # Without root, other users' io files need CAP_SYS_PTRACE: a privilege fallback.
            return capability(self.name, "fallback", f"{denied}; needs CAP_SYS_PTRACE")
        # As root a denial is a per-process protection (a sandbox's init, a non-dumpable
        # process in another user namespace), not a missing privilege of the collector.
        return capability(self.name, "kernel", f"{paths}; {denied}")

    def read(self, now_ns: int) -> SourceOutput:
        seconds = self._interval.advance(now_ns)
        proc = self._proc_s
        rows: dict[int, dict[str, Any]] = {}
        rank_cpu: list[tuple[float, int]] = []
        rank_rss: list[tuple[int, int]] = []
        rank_io: list[tuple[float, int]] = []
        prev_all = self._prev
        new_prev: dict[int, _Prev] = {}
        io_denied: list[int] = []
        kept = self._kept
        with os.scandir(proc) as listing:
            entries = [(int(e.name), e) for e in listing if e.name.isdigit()]
        kept.forget_unless({pid for pid, _ in entries})
        ticks = CLOCK_TICKS
        for pid, dirent in entries:
            try:
                # /proc/<pid> belongs to the process's euid. By path, not from the kept fd:
                # only the directory's getattr recomputes the owner after a setuid.
                uid = dirent.stat().st_uid
            except OSError:
                continue
            prev = prev_all.get(pid)
            raw = kept.stat(pid) if prev is not None else None
            if raw is not None and prev is not None and raw == prev.raw:
                # Nothing in its stat moved (no clock tick of CPU, same RSS, state, threads,
                # faults, last CPU): an idle process, most of a host's. Its row is the last one
                # with a zero CPU share, and its io is not read: a process that accounted no
                # CPU tick did (almost) no IO, and whatever it did is counted when its io is
                # read next, as a rate over the whole span since the last read.
                row = prev.row.copy()
                row["ts_ns"] = now_ns
                row["uid"] = uid
                row["cpu_ratio"] = 0.0
                if prev.io is not None:
                    row["read_bytes_per_second"] = row["write_bytes_per_second"] = 0.0
                    rank_io.append((0.0, pid))
                else:
                    row["read_bytes_per_second"] = row["write_bytes_per_second"] = None
                if prev.io_denied:
                    io_denied.append(pid)
                rows[pid] = row
                new_prev[pid] = prev
                rank_cpu.append((0.0, pid))
                rank_rss.append((row["rss_bytes"], pid))
                continue
            if raw is not None:
                raw_io, denied = kept.io(pid)
            else:
                got = kept.read(pid)
                if got is None:
                    continue  # exited during the scan
                raw, raw_io, denied = got
            try:
                st = parse_pid_stat(raw)
            except (ValueError, IndexError):
                continue  # a truncated read of a dying process: it is gone next scan anyway
            io = parse_pid_io(raw_io) if raw_io else None
            if denied:
                io_denied.append(pid)
            if prev is not None and prev.start_ticks != st.start_ticks:
                prev = None  # the pid was reused by a new process
            cpu_ratio = 0.0
            read_rate = write_rate = None
            if prev is not None and seconds:
                cpu_ratio = max(0, st.cpu_ticks - prev.cpu_ticks) / ticks / seconds
                io_seconds = (now_ns - prev.io_ns) / 1e9
                if io is not None and prev.io is not None and io_seconds > 0:
                    read_rate = max(0, io[0] - prev.io[0]) / io_seconds
                    write_rate = max(0, io[1] - prev.io[1]) / io_seconds
                    rank_io.append((read_rate + write_rate, pid))
            rss = st.rss_pages * PAGE_SIZE
            rank_cpu.append((cpu_ratio, pid))
            rank_rss.append((rss, pid))
            # Every ProcessRow field, in declaration order: the row becomes the model's
            # __dict__ as it is (see _common.trusted).
            row = {
                "ts_ns": now_ns,
                "pid": pid,
                "ppid": st.ppid,
                "comm": st.comm,
                "cmdline": "",
                "uid": uid,
                "state": st.state,
                "cgroup": "",
                "threads": st.threads,
                "cpu_seconds_total": st.cpu_ticks / ticks,
                "cpu_ratio": cpu_ratio,
                "rss_bytes": rss,
                "fds": None,
                "read_bytes_per_second": read_rate,
                "write_bytes_per_second": write_rate,
                "cpu_delay_seconds_total": None,
                "blkio_delay_seconds_total": None,
                "swapin_delay_seconds_total": None,
            }
            rows[pid] = row
            new_prev[pid] = _Prev(st.start_ticks, st.cpu_ticks, io, now_ns, raw, row, denied)
        self._prev = new_prev
        self._io_denied, self._io_seen = io_denied, len(rows)
        n = self._top_n
        top_cpu = [pid for _, pid in heapq.nlargest(n, rank_cpu)]
        top_rss = [pid for _, pid in heapq.nlargest(n, rank_rss)]
        top_io = [pid for _, pid in heapq.nlargest(n, rank_io)]
        top = list(dict.fromkeys(top_cpu + top_rss + top_io))
        prefixes = tuple(f"{proc}/{pid}/" for pid in top)
        self._top_files.forget_unless(lambda path: path.startswith(prefixes))
        samples: list[SampleRow] = [sample_row(now_ns, "processes_total", "host", len(rows))]
        for pid in top:
            # A copy: the unenriched row is kept for the next scan (see _Prev.row).
            rows[pid] = row = rows[pid].copy()
            self._enrich(pid, row, samples, now_ns, pss=pid in top_rss[: self._pss_top])
        if self._taskstats is not None and self._taskstats.active:
            for pid, d in self._taskstats.delays(top, CLOCK_TICKS).items():
                rows[pid]["cpu_delay_seconds_total"] = d.cpu
                rows[pid]["blkio_delay_seconds_total"] = d.blkio
                rows[pid]["swapin_delay_seconds_total"] = d.swapin
        processes = [trusted(ProcessRow, r) for r in rows.values()]
        return SourceOutput(rows=samples, processes=processes)

    def _enrich(
        self, pid: int, row: dict[str, Any], samples: list[SampleRow], now_ns: int, *, pss: bool
    ) -> None:
        base = f"{self._proc_s}/{pid}"
        entity = f"process/{pid}"
        kept = self._top_files
        raw = kept.read(f"{base}/cmdline")
        if raw:
            row["cmdline"] = parse_cmdline(raw)
        raw = kept.read(f"{base}/cgroup")
        if raw:
            row["cgroup"] = pick_cgroup(raw)
        # Fails when the process exited, or for another user's fds without CAP_SYS_PTRACE.
        with contextlib.suppress(OSError):
            row["fds"] = len(os.listdir(f"{base}/fd"))
        samples.append(sample_row(now_ns, "process_cpu_ratio", entity, float(row["cpu_ratio"])))
        samples.append(sample_row(now_ns, "process_rss_bytes", entity, float(row["rss_bytes"])))
        fds = row.get("fds")
        if isinstance(fds, int):
            raw = kept.read(f"{base}/limits")
            limit = parse_nofile_limit(raw) if raw else None
            if limit:
                samples.append(sample_row(now_ns, "process_fds_used_ratio", entity, fds / limit))
        if pss:
            raw = read_optional(f"{base}/smaps_rollup")
            value = parse_smaps_rollup_pss(raw) if raw else None
            if value is not None:
                samples.append(sample_row(now_ns, "process_pss_bytes", entity, value))

    def close(self) -> None:
        self._kept.close()
        self._top_files.close()
