"""Delay accounting of single processes: taskstats over generic netlink, fallback procfs.

taskstats (Documentation/accounting/taskstats.rst) answers TASKSTATS_CMD_GET for one pid with
a ``struct taskstats`` whose delay fields have kept their offsets since version 1 (fields are
only ever appended, include/uapi/linux/taskstats.h). The command needs CAP_NET_ADMIN
(GENL_ADMIN_PERM in kernel/taskstats.c). Since Linux 5.14 delay accounting is off unless
``kernel.task_delayacct=1``: the CPU delay (from the scheduler's run-queue statistics) is
still filled in, the block-IO and swap-in delays stay zero, so they are reported as unknown.

Fallback without the capability: ``/proc/<pid>/schedstat`` (second field: ns spent runnable
but waiting) and ``delayacct_blkio_ticks`` (field 42 of ``/proc/<pid>/stat``).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from sreagent.collector._common import capability, os_reason, read_int, read_optional
from sreagent.collector._nl import NetlinkSocket, attributes
from sreagent.collector._source import Roots, SourceOutput
from sreagent.telemetry import SourceCapability

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
TASKSTATS_CMD_GET = 1
TASKSTATS_CMD_ATTR_PID = 1
TASKSTATS_TYPE_STATS = 3
TASKSTATS_TYPE_AGGR_PID = 4
GENL_HDR = struct.Struct("=BBxx")
TASKSTATS_DELAYS = struct.Struct("=H2xIBB6xQQQQQQ")
"""version, ac_exitcode, ac_flag, ac_nice, cpu_count, cpu_delay_total, blkio_count,
blkio_delay_total, swapin_count, swapin_delay_total (ns)."""


@dataclass(frozen=True)
class Delays:
    """Delay totals of one process in seconds; None where the kernel does not account them."""

    cpu: float | None
    blkio: float | None
    swapin: float | None


def nla(attr_type: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, attr_type) + payload + b"\0" * ((4 - length % 4) % 4)


def parse_family_id(replies: list[tuple[int, memoryview]]) -> int:
    for _msg_type, payload in replies:
        for attr_type, value in attributes(payload, GENL_HDR.size):
            if attr_type == CTRL_ATTR_FAMILY_ID:
                return int(struct.unpack_from("=H", value, 0)[0])
    raise OSError(2, "generic netlink family TASKSTATS not found")


def parse_taskstats(replies: list[tuple[int, memoryview]], accounting_on: bool) -> Delays | None:
    for _msg_type, payload in replies:
        for attr_type, value in attributes(payload, GENL_HDR.size):
            if attr_type != TASKSTATS_TYPE_AGGR_PID:
                continue
            for inner_type, inner in attributes(value):
                if inner_type == TASKSTATS_TYPE_STATS:
                    f = TASKSTATS_DELAYS.unpack_from(inner, 0)
                    cpu_ns, blkio_ns, swapin_ns = f[5], f[7], f[9]
                    return Delays(
                        cpu_ns / 1e9,
                        blkio_ns / 1e9 if accounting_on else None,
                        swapin_ns / 1e9 if accounting_on else None,
                    )
    return None


def delayacct_enabled(roots: Roots) -> bool:
    """Whether block-IO and swap-in delays are accounted (the sysctl exists since 5.14)."""
    value = read_int(roots.proc / "sys/kernel/task_delayacct")
    return value is None or value == 1


class TaskstatsClient:
    """One generic netlink socket bound to the TASKSTATS family."""

    def __init__(self) -> None:
        self._sock = NetlinkSocket(NETLINK_GENERIC)
        try:
            body = GENL_HDR.pack(CTRL_CMD_GETFAMILY, 1) + nla(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0")
            self.family = parse_family_id(self._sock.request(GENL_ID_CTRL, 0, body))
            # Ask about ourselves once so that a missing CAP_NET_ADMIN shows now, not later.
            self.query(os.getpid(), True)
        except OSError:
            self._sock.close()
            raise

    def query(self, pid: int, accounting_on: bool) -> Delays | None:
        body = GENL_HDR.pack(TASKSTATS_CMD_GET, 1) + nla(
            TASKSTATS_CMD_ATTR_PID, struct.pack("=I", pid)
        )
        return parse_taskstats(self._sock.request(self.family, 0, body), accounting_on)

    def close(self) -> None:
        self._sock.close()


def parse_schedstat(raw: bytes) -> float:
    """Seconds runnable but waiting, the second field of /proc/<pid>/schedstat (ns)."""
    return int(raw.split()[1]) / 1e9


class TaskstatsSource:
    """``taskstats``: delay accounting for the processes the process scan ranks at the top.

    It produces nothing on its own; :class:`~sreagent.collector._procs.ProcessSource` asks
    it for the delays of its top processes.
    """

    name = "taskstats"
    optional = True

    def __init__(self, roots: Roots, *, use_netlink: bool = True) -> None:
        self._roots = roots
        self._client: TaskstatsClient | None = None
        self._accounting = delayacct_enabled(roots)
        self.active = True
        """Cleared by the facade when the source is shed."""
        if use_netlink:
            try:
                self._client = TaskstatsClient()
                self._why = "taskstats generic netlink"
            except OSError as err:
                self._why = f"taskstats: {os_reason(err)}; /proc/<pid>/schedstat and stat"
        else:
            self._why = "disabled by configuration; /proc/<pid>/schedstat and stat"

    def capability(self) -> SourceCapability:
        self._accounting = delayacct_enabled(self._roots)
        reason = self._why
        if not self._accounting:
            reason += "; kernel.task_delayacct=0: block-IO and swap-in delays not accounted"
        return capability(self.name, "kernel" if self._client else "fallback", reason)

    def delays(self, pids: list[int], clock_ticks: int) -> dict[int, Delays]:
        self._accounting = delayacct_enabled(self._roots)
        out: dict[int, Delays] = {}
        for pid in pids:
            got: Delays | None = None
            if self._client is not None:
                try:
                    got = self._client.query(pid, self._accounting)
                except OSError:
                    got = None  # ESRCH: the process exited between the scan and the query
            else:
                got = self._from_proc(pid, clock_ticks)
            if got is not None:
                out[pid] = got
        return out

    def _from_proc(self, pid: int, clock_ticks: int) -> Delays | None:
        base = self._roots.proc / str(pid)
        sched = read_optional(base / "schedstat")
        stat = read_optional(base / "stat")
        if sched is None or stat is None:
            return None
        fields = stat[stat.rfind(b")") + 2 :].split()
        blkio = int(fields[39]) / clock_ticks if len(fields) > 39 and self._accounting else None
        return Delays(parse_schedstat(sched), blkio, None)

    def read(self, now_ns: int) -> SourceOutput:
        return SourceOutput()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
