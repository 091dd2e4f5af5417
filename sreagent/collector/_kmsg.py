"""Kernel events from ``/dev/kmsg``: a pure record parser, a pure classifier, a thin reader.

``/dev/kmsg`` hands out one structured record per ``read()`` (``Documentation/ABI/testing/
dev-kmsg``)::

    <prio>,<seq>,<ts_usec>,<flags>[,...];<message>\\n
     KEY=value\\n                                   (optional dictionary lines)

The reader starts at the END of the ring on its first run (what happened before the collector
existed is not news), remembers the last sequence number in a small state file written
atomically, and on restart resumes after that number, so a line is never reported twice and
lines written while the collector was down are not lost. Sequence numbers restart at 0 on
reboot, so the state also keeps the boot id; a state from another boot is ignored and the
current boot's ring is read from its start (nothing of it was seen yet). A gap in sequence
numbers (the ring overwrote records we had not read: ``read()`` fails with ``EPIPE``) is counted
as lost records, never hidden.

:func:`classify` maps one message to ``(kind, entity, severity, attributes)`` or ``None``. Its
rules cover what node-problem-detector's ``kernel-monitor.json`` matches (OOM kill, hung task,
kernel oops, ext4 errors and warnings, buffer I/O errors, XFS shutdown, read-only remounts,
memory read errors, stuck ``unregister_netdevice``) plus NVIDIA Xid and NVSwitch SXid, NVLink
errors, PCIe AER, NIC carrier changes and block-layer request errors.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from sreagent.atomic import atomic_write_bytes
from sreagent.collector._source import Roots, SourceOutput
from sreagent.errors import BadInput
from sreagent.telemetry import Event, Sample, SourceCapability
from sreagent.telemetry.batch import MAX_LABEL_VALUE_LEN, MAX_LABELS, MAX_MESSAGE_LEN, Severity
from sreagent.telemetry.names import entity

SOURCE_NAME = "kmsg"
STATE_FILE = "kmsg.json"
__all__ = [
    "KernelEvent",
    "KmsgRecord",
    "KmsgSource",
    "classify",
    "kmsg_source",
    "parse_oom_context",
    "parse_record",
]

READ_BUFFER = 16384
"""Larger than the longest record (PRINTK_MESSAGE_MAX is 2048 plus the dictionary); a smaller
buffer makes read() fail with EINVAL."""

# Syslog facilities and levels (include/linux/syslog.h, RFC 5424).
_FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news")
_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


# ---------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class KmsgRecord:
    """One ``/dev/kmsg`` record."""

    seq: int
    ts_usec: int
    """Microseconds since boot (the kernel's ``local_clock``)."""
    facility: int
    level: int
    message: str
    continuation: bool = False
    """``c`` flag: a fragment of a line printed in several pieces."""
    dictionary: dict[str, str] = field(default_factory=dict)
    """``SUBSYSTEM=``, ``DEVICE=`` lines some drivers attach."""


_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")


def _unescape(raw: bytes) -> str:
    # The kernel writes unprintable bytes as \xNN so a record stays one line.
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw).decode("utf-8", "replace")


def parse_record(raw: bytes) -> KmsgRecord:
    """Parse one record as ``read()`` returned it from ``/dev/kmsg``.

    Raises :class:`~sreagent.errors.BadInput` naming what is wrong with a malformed record.
    """
    header, sep, rest = raw.partition(b";")
    if not sep:
        raise BadInput(f"kmsg record has no ';' after its header: {raw[:80]!r}")
    fields = header.split(b",")
    if len(fields) < 4:
        raise BadInput(f"kmsg record header needs prio,seq,ts,flags: {header[:80]!r}")
    try:
        prio, seq, ts_usec = int(fields[0]), int(fields[1]), int(fields[2])
    except ValueError as err:
        raise BadInput(f"kmsg record header is not numeric: {header[:80]!r}") from err
    if prio < 0 or seq < 0 or ts_usec < 0:
        raise BadInput(f"kmsg record header has a negative number: {header[:80]!r}")
    lines = rest.rstrip(b"\n").split(b"\n")
    dictionary: dict[str, str] = {}
    for line in lines[1:]:
        key, eq, value = line.strip().partition(b"=")
        if eq and key:
            dictionary[_unescape(key)] = _unescape(value)
    return KmsgRecord(
        seq=seq,
        ts_usec=ts_usec,
        facility=prio >> 3,
        level=prio & 7,
        message=_unescape(lines[0]),
        continuation=fields[3].startswith(b"c"),
        dictionary=dictionary,
    )


# ---------------------------------------------------------------------------------- classifier


class KernelEvent(NamedTuple):
    """What :func:`classify` recognised in one kernel message."""

    kind: str
    entity: str
    severity: Severity
    attributes: dict[str, str]


_OOM_KILLED = re.compile(
    r"(?P<prefix>Memory cgroup out of memory|Out of memory[^:]*)?:?\s*"
    r"Killed process (?P<pid>\d+) \((?P<comm>.*)\) total-vm:(?P<total_vm>\d+)kB, "
    r"anon-rss:(?P<anon_rss>\d+)kB, file-rss:(?P<file_rss>\d+)kB"
    r"(?:, shmem-rss:(?P<shmem_rss>\d+)kB)?(?:, UID:(?P<uid>\d+))?"
)
_OOM_CONTEXT = re.compile(r"^oom-kill:(?P<fields>\S+)")
# "INFO: task kworker/1:2:123 blocked for more than 120 seconds." The comm may hold ':' and
# spaces, so the pid is the last ':'-separated word before "blocked".
_HUNG_TASK = re.compile(
    r"task (?P<comm>[\S ]+):(?P<pid>\d+) blocked for more than (?P<secs>\d+) seconds"
)
_XID = re.compile(
    r"NVRM: Xid \((?:PCI:)?(?P<pci>[0-9A-Fa-f:.]+)\): (?P<xid>\d+),?\s*(?P<detail>.*)"
)
_SXID = re.compile(
    r"(?P<dev>nvidia-nvswitch\d+): SXid \((?:PCI:)?(?P<pci>[0-9A-Fa-f:.]+)\): (?P<sxid>\d+),?\s*(?P<detail>.*)"
)
_NVLINK = re.compile(r"(?i)\bnvlink\b.*\b(?:error|fatal|fail(?:ed|ure)?|timeout|fault)\b")
_NVLINK_LINK = re.compile(r"(?i)\blink\s*#?\s*(?P<link>\d+)")
_GPU_PCI = re.compile(r"PCI:(?P<pci>[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}(?:\.[0-7])?)")
_AER = re.compile(
    r"^(?:(?P<driver>\S+) )?(?P<bdf>[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]): "
    r"PCIe Bus Error: severity=(?P<severity>[^,]+), type=(?P<type>[^,]+)"
)
_LINK = re.compile(r"(?i)\b(?:NIC )?Link is (?P<state>Up|Down)\b|\bLink (?P<state2>up|down)\b")
_IFNAME_LIKE = re.compile(
    r"^(?:eth|en|em|ib|bond|br|wl|ww|veth|vlan|team|lan|wan|hsn|mlx|vif|tap|tun|docker|virbr"
    r"|vxlan|gre|sl|p\d+p)[\w.@-]*$"
)
_PCI_ADDR = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_SPEED = re.compile(r"(?P<speed>\d+(?:\.\d+)?) ?(?P<unit>[MG])(?:bps|b/s)", re.I)
_BLOCK_ERROR = re.compile(
    r"(?P<error>I/O|critical medium|critical target|critical nexus|critical space allocation|"
    r"recoverable transport|timeout|protection|operation not supported|[a-z ]+?) error, "
    r"dev (?P<dev>[^\s,]+), sector (?P<sector>\d+)(?: op 0x[0-9a-f]+:\((?P<op>\w+)\))?"
)
_BUFFER_IO = re.compile(
    r"Buffer I/O error on dev(?:ice)? (?P<dev>[^\s,]+), logical block (?P<block>\d+)"
)
_NVME_TIMEOUT = re.compile(
    r"^nvme (?P<dev>nvme\d+): I/O (?:tag )?(?P<tag>\d+) (?:\(\w+\) )?QID (?P<qid>\d+) timeout"
)
_FS_DEVICE = re.compile(r"\((?:device )?(?P<dev>[^\s)]+)\)")
_FS_NAME = re.compile(r"^(?P<fs>EXT[234]-fs|XFS|BTRFS|F2FS-fs)\b")
_READONLY = re.compile(
    r"Remounting filesystem read-only|forced readonly|remounting filesystem read-only", re.I
)
_FS_ERROR = re.compile(r"^(?P<fs>EXT[234]-fs|BTRFS|F2FS-fs) (?P<level>error|warning|critical)\b")
_XFS_SHUTDOWN = re.compile(
    r"^XFS \((?P<dev>[^)]+)\):.*(?:Shutting down filesystem|Filesystem has been shut down)"
)
_OOPS = re.compile(
    r"^(?:BUG: (?P<bug>.*)|kernel BUG at (?P<at>\S+)|Oops: (?P<oops>.*)|"
    r"(?P<trap>divide error|general protection fault|invalid opcode|stack segment): [0-9a-f]{4} \[#\d+\]|"
    r"Kernel panic - not syncing: (?P<panic>.*)|watchdog: (?P<watchdog>BUG: soft lockup.*|Watchdog detected hard LOCKUP.*)|"
    r"rcu: INFO: (?P<rcu>rcu_\w+ (?:detected|self-detected) stall.*))"
)
_MEMORY_ERROR = re.compile(
    r"(?:EDAC (?P<mc>MC\d+): (?P<count>\d+) (?P<ce>CE|UE) (?P<what>.*)|"
    r"(?P<npd>CE memory read error .*)|\[Hardware Error\]: (?P<mce>.*))"
)
_UNREGISTER = re.compile(
    r"unregister_netdevice: waiting for (?P<ifname>\S+) to become free\. Usage count = (?P<count>-?\d+)"
)
_PID_IN_DETAIL = re.compile(r"\bpid=(?P<pid>\d+)")
_COMM_IN_DETAIL = re.compile(r"\bname=(?P<name>[^,]+)")

# NVIDIA's Xid catalogue: codes that mean the GPU or its memory is (possibly) broken, as
# opposed to an application fault (13, 31, 43, 45...). Severity only; every Xid is reported.
_XID_CRITICAL = frozenset({48, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120, 123, 140})
_XID_APPLICATION = frozenset({13, 31, 43, 45, 68, 69})


def _clip(value: str) -> str:
    return value[:MAX_LABEL_VALUE_LEN]


def _nic_from_prefix(prefix: str) -> str | None:
    """The interface a carrier message is about, from the words before "Link is ...".

    Driver messages put the driver, the PCI address and sometimes a function name before the
    interface ("e1000: eth0: e1000_watchdog: NIC Link is Up"), so prefer a word shaped like
    an interface name and fall back to the last word.
    """
    words = [w.rstrip(":,") for w in prefix.split()]
    words = [w for w in words if w and not _PCI_ADDR.match(w) and len(w) <= 15 and "/" not in w]
    for word in reversed(words):
        if _IFNAME_LIKE.match(word):
            return word
    return words[-1] if len(words) > 1 else (words[0] if words else None)


def _xid_severity(code: int) -> Severity:
    if code in _XID_CRITICAL:
        return "critical"
    return "warning" if code in _XID_APPLICATION else "error"


def _gpu_entity(pci: str) -> str:
    return entity("gpu", pci.lower())


def classify(message: str) -> KernelEvent | None:
    """Classify one kernel message; ``None`` when it is none of the known event kinds."""
    m = _OOM_KILLED.search(message)
    if m:
        attrs = {
            "pid": m["pid"],
            "comm": _clip(m["comm"]),
            "total_vm_kb": m["total_vm"],
            "anon_rss_kb": m["anon_rss"],
            "file_rss_kb": m["file_rss"],
        }
        if m["shmem_rss"]:
            attrs["shmem_rss_kb"] = m["shmem_rss"]
        if m["uid"]:
            attrs["uid"] = m["uid"]
        if m["prefix"] and m["prefix"].startswith("Memory cgroup"):
            attrs["constraint"] = "memcg"
        return KernelEvent("oom_kill", entity("process", m["pid"]), "error", attrs)
    m = _HUNG_TASK.search(message)
    if m:
        comm = m["comm"].strip()
        return KernelEvent(
            "hung_task",
            entity("process", m["pid"]),
            "error",
            {"pid": m["pid"], "comm": _clip(comm), "blocked_seconds": m["secs"]},
        )
    m = _XID.search(message)
    if m:
        code = int(m["xid"])
        attrs = {"xid": str(code), "pci": m["pci"].lower(), "detail": _clip(m["detail"].strip())}
        pid = _PID_IN_DETAIL.search(m["detail"])
        if pid:
            attrs["pid"] = pid["pid"]
        name = _COMM_IN_DETAIL.search(m["detail"])
        if name:
            attrs["comm"] = _clip(name["name"].strip())
        return KernelEvent("gpu_xid", _gpu_entity(m["pci"]), _xid_severity(code), attrs)
    m = _SXID.search(message)
    if m:
        return KernelEvent(
            "nvlink_error",
            entity("nvswitch", m["pci"].lower()),
            "error",
            {
                "sxid": m["sxid"],
                "device": m["dev"],
                "pci": m["pci"].lower(),
                "detail": _clip(m["detail"].strip()),
            },
        )
    if _NVLINK.search(message):
        attrs = {"detail": _clip(message)}
        link = _NVLINK_LINK.search(message)
        if link:
            attrs["link"] = link["link"]
        pci = _GPU_PCI.search(message)
        if pci:
            attrs["pci"] = pci["pci"].lower()
        severity: Severity = "critical" if re.search(r"(?i)\bfatal\b", message) else "error"
        return KernelEvent(
            "nvlink_error", _gpu_entity(pci["pci"]) if pci else "host", severity, attrs
        )
    m = _AER.search(message)
    if m:
        sev_text = m["severity"].strip()
        lowered = sev_text.lower()
        sev: Severity = (
            "warning"
            if lowered.startswith("correct")
            else "critical"
            if "fatal" in lowered and "non-fatal" not in lowered
            else "error"
        )
        attrs = {"bdf": m["bdf"], "aer_severity": _clip(sev_text), "type": _clip(m["type"].strip())}
        if m["driver"]:
            attrs["driver"] = _clip(m["driver"])
        return KernelEvent("pcie_aer", entity("pci", m["bdf"]), sev, attrs)
    m = _OOPS.search(message)
    if m:
        oops_attrs = {name: _clip(value) for name, value in m.groupdict().items() if value}
        oops_sev: Severity = "critical" if m["panic"] else "error"
        return KernelEvent("kernel_oops", "host", oops_sev, oops_attrs)
    m = _XFS_SHUTDOWN.search(message)
    if m:
        return KernelEvent(
            "fs_error",
            entity("disk", m["dev"]),
            "critical",
            {"fs": "xfs", "device": m["dev"], "action": "shutdown"},
        )
    if _READONLY.search(message):
        attrs = {}
        dev = _FS_DEVICE.search(message)
        fs = _FS_NAME.search(message)
        if fs:
            attrs["fs"] = fs["fs"].split("-")[0].lower()
        if dev:
            attrs["device"] = dev["dev"]
        return KernelEvent(
            "fs_readonly", entity("disk", dev["dev"]) if dev else "host", "critical", attrs
        )
    m = _FS_ERROR.search(message)
    if m:
        dev = _FS_DEVICE.search(message)
        attrs = {"fs": m["fs"].split("-")[0].lower(), "detail": _clip(message)}
        if dev:
            attrs["device"] = dev["dev"]
        fs_sev: Severity = "warning" if m["level"] == "warning" else "error"
        return KernelEvent("fs_error", entity("disk", dev["dev"]) if dev else "host", fs_sev, attrs)
    m = _BUFFER_IO.search(message)
    if m:
        return KernelEvent(
            "io_error",
            entity("disk", m["dev"]),
            "error",
            {"device": m["dev"], "error": "buffer I/O", "logical_block": m["block"]},
        )
    m = _BLOCK_ERROR.search(message)
    if m:
        attrs = {"device": m["dev"], "error": m["error"].strip(), "sector": m["sector"]}
        if m["op"]:
            attrs["op"] = m["op"]
        return KernelEvent("io_error", entity("disk", m["dev"]), "error", attrs)
    m = _NVME_TIMEOUT.search(message)
    if m:
        return KernelEvent(
            "io_error",
            entity("disk", m["dev"]),
            "warning",
            {"device": m["dev"], "error": "timeout", "qid": m["qid"]},
        )
    m = _MEMORY_ERROR.search(message)
    if m:
        uncorrected = m["ce"] == "UE"
        attrs = {"detail": _clip(message)}
        if m["mc"]:
            attrs.update({"controller": m["mc"], "count": m["count"], "type": m["ce"]})
        mem_sev: Severity = "critical" if uncorrected else ("error" if m["mce"] else "warning")
        return KernelEvent("memory_error", "host", mem_sev, attrs)
    m = _UNREGISTER.search(message)
    if m:
        return KernelEvent(
            "netdev_unregister_hung",
            entity("nic", m["ifname"]),
            "warning",
            {"ifname": m["ifname"], "usage_count": m["count"]},
        )
    m = _LINK.search(message)
    if m:
        state = (m["state"] or m["state2"]).lower()
        ifname = _nic_from_prefix(message[: m.start()])
        if ifname is None:
            return None
        attrs = {"ifname": ifname}
        speed = _SPEED.search(message, m.end())
        if speed:
            attrs["speed_mbps"] = str(
                int(float(speed["speed"]) * (1000 if speed["unit"].upper() == "G" else 1))
            )
        if state == "down":
            return KernelEvent("link_down", entity("nic", ifname), "warning", attrs)
        return KernelEvent("link_up", entity("nic", ifname), "info", attrs)
    return None


def parse_oom_context(message: str) -> dict[str, str] | None:
    """The ``oom-kill:constraint=...,task_memcg=...,task=...,pid=...`` summary line as a dict.

    The kernel prints it just before "Killed process"; it names the cgroups, which the kill
    line itself lacks. ``None`` for any other message.
    """
    m = _OOM_CONTEXT.match(message)
    if not m:
        return None
    context: dict[str, str] = {}
    for part in m["fields"].split(","):
        key, eq, value = part.partition("=")
        if eq:
            context[key] = value
    return context


# ---------------------------------------------------------------------------------- reader


def _read_boot_id(roots: Roots) -> str:
    try:
        return (roots.proc / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass
class _State:
    boot_id: str
    seq: int


def _load_state(path: Path) -> _State | None:
    try:
        data = json.loads(path.read_bytes())
        return _State(boot_id=str(data["boot_id"]), seq=int(data["seq"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # A damaged state file must not stop kernel events: start at the end, as on a first run.
        return None


class KmsgSource:
    """Kernel events from ``/dev/kmsg``; mode ``kernel`` or ``off`` with the open error."""

    name = SOURCE_NAME
    optional = False

    def __init__(
        self,
        roots: Roots | None = None,
        state_dir: Path | None = None,
        *,
        max_records_per_read: int = 20_000,
    ) -> None:
        self._roots = roots or Roots()
        self._state_path = state_dir / STATE_FILE if state_dir is not None else None
        self._max_records = max_records_per_read
        self._boot_id = _read_boot_id(self._roots)
        self._fd: int | None = None
        self._last_seq: int | None = None
        self._saved_seq: int | None = None
        self._lost_total = 0
        self._malformed_total = 0
        self._oom_context: dict[str, dict[str, str]] = {}
        self._state_error = ""
        self._capability = self._open()

    # -- lifecycle ------------------------------------------------------------------------

    def _open(self) -> SourceCapability:
        path = self._roots.dev / "kmsg"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            hint = ""
            if err.errno in (errno.EPERM, errno.EACCES):
                hint = " (reading the kernel log needs CAP_SYSLOG when kernel.dmesg_restrict=1)"
            return SourceCapability(
                source=self.name, mode="off", reason=f"cannot open {path}: {err}{hint}"
            )
        state = _load_state(self._state_path) if self._state_path else None
        if state is not None and state.boot_id == self._boot_id and self._boot_id:
            # Same boot: resume after the last record we reported (skipping older ones on read).
            os.lseek(fd, 0, os.SEEK_SET)
            self._last_seq = self._saved_seq = state.seq
            start = f"resuming after seq {state.seq}"
        elif state is not None:
            # Another boot: none of this boot's ring was seen yet, so read it from its start.
            os.lseek(fd, 0, os.SEEK_SET)
            start = "new boot since the saved state: reading this boot's ring from its start"
        else:
            # First run: start at the end. Rather than lseek(SEEK_END), which would leave the
            # last sequence number unknown until the next kernel line (a restart before it would
            # start at the end again and lose what came between), read the ring once without
            # reporting it and save where it ends.
            os.lseek(fd, 0, os.SEEK_SET)
            self._fd = fd
            skipped = self._drain_silently()
            self._save_state()
            start = f"first run: starting at the end of the ring (skipped {skipped} old records)"
        self._fd = fd
        return SourceCapability(source=self.name, mode="kernel", reason=f"reading {path}; {start}")

    def capability(self) -> SourceCapability:
        if self._state_error and self._capability.mode == "kernel":
            return SourceCapability(
                source=self.name,
                mode="kernel",
                reason=f"{self._capability.reason}; state not saved: {self._state_error}",
            )
        return self._capability

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- reading --------------------------------------------------------------------------

    def _drain_silently(self) -> int:
        assert self._fd is not None
        skipped = 0
        while True:
            try:
                raw = os.read(self._fd, READ_BUFFER)
            except BlockingIOError:
                return skipped
            except BrokenPipeError:
                continue
            if not raw:
                return skipped
            with contextlib.suppress(BadInput):
                self._last_seq = parse_record(raw).seq
                skipped += 1

    def _records(self) -> list[KmsgRecord]:
        assert self._fd is not None
        records: list[KmsgRecord] = []
        while len(records) < self._max_records:
            try:
                raw = os.read(self._fd, READ_BUFFER)
            except BlockingIOError:
                break
            except BrokenPipeError:
                # Our position was overwritten; the next read returns the oldest record still
                # held. The sequence gap it leaves is counted as lost below.
                continue
            if not raw:
                break
            try:
                record = parse_record(raw)
            except BadInput:
                self._malformed_total += 1
                continue
            if self._last_seq is not None:
                if record.seq <= self._last_seq:
                    continue  # already reported before a restart
                self._lost_total += record.seq - self._last_seq - 1
            self._last_seq = record.seq
            records.append(record)
        return records

    def _event(self, record: KmsgRecord, now_ns: int, mono_ns: int) -> Event | None:
        context = parse_oom_context(record.message)
        if context is not None and "pid" in context:
            self._oom_context = {context["pid"]: context}
            return None
        found = classify(record.message)
        if found is None:
            return None
        attrs = dict(found.attributes)
        if found.kind == "oom_kill":
            ctx = self._oom_context.pop(attrs.get("pid", ""), None)
            if ctx:
                for key in ("task_memcg", "oom_memcg", "constraint"):
                    if ctx.get(key):
                        attrs["cgroup" if key == "task_memcg" else key] = _clip(ctx[key])
        attrs["seq"] = str(record.seq)
        attrs["facility"] = (
            _FACILITIES[record.facility]
            if record.facility < len(_FACILITIES)
            else str(record.facility)
        )
        attrs["level"] = _LEVELS[record.level]
        if len(attrs) > MAX_LABELS:
            keep = ("seq", "level", "facility")
            extra = [k for k in attrs if k not in keep][: MAX_LABELS - len(keep)]
            attrs = {k: attrs[k] for k in (*extra, *keep)}
        # The record's time is microseconds since boot: place it on the wall clock by its age.
        age_ns = max(0, mono_ns - record.ts_usec * 1000)
        return Event(
            ts_ns=max(0, now_ns - age_ns),
            kind=found.kind,
            entity=found.entity,
            source=self.name,
            severity=found.severity,
            message=record.message[:MAX_MESSAGE_LEN],
            attributes=attrs,
        )

    def read(self, now_ns: int) -> SourceOutput:
        out = SourceOutput()
        if self._fd is None:
            return out
        try:
            records = self._records()
        except OSError as err:
            self._capability = SourceCapability(
                source=self.name,
                mode="off",
                reason=f"reading {self._roots.dev / 'kmsg'} failed: {err}",
            )
            self.close()
            return out
        mono_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        for record in records:
            event = self._event(record, now_ns, mono_ns)
            if event is not None:
                out.events.append(event)
        out.add(
            Sample(
                ts_ns=now_ns, metric=LOST_METRIC, entity="collector", value=float(self._lost_total)
            )
        )
        self._save_state()
        return out

    def _save_state(self) -> None:
        if self._state_path is None or self._last_seq is None or self._last_seq == self._saved_seq:
            return
        body = json.dumps({"boot_id": self._boot_id, "seq": self._last_seq}).encode()
        try:
            atomic_write_bytes(self._state_path, body)
        except OSError as err:
            self._state_error = str(err)
            return
        self._state_error = ""
        self._saved_seq = self._last_seq

    @property
    def lost_records(self) -> int:
        """Records the ring overwrote before we read them, since this source started."""
        return self._lost_total

    @property
    def malformed_records(self) -> int:
        return self._malformed_total


LOST_METRIC = "collector_kmsg_lost_records_total"


def kmsg_source(roots: Roots | None = None, state_dir: Path | None = None) -> KmsgSource:
    """The kernel-log source; ``state_dir`` keeps the last sequence number across restarts."""
    return KmsgSource(roots, state_dir)
