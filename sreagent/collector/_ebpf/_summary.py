"""Turn one interval of raw eBPF data into samples and events (pure; both backends share it).

Backends differ in how they get data out of the kernel (BCC maps and a ring buffer, bpftrace
JSON lines) but hand over the same :class:`IntervalData`: raw counts keyed the way the kernel
reports them (``dev_t`` numbers, TCP state numbers, drop-reason numbers, log2 buckets). This
module names them and decides what becomes an event and what a sample, so the two backends
cannot drift apart in meaning.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from sreagent.collector._source import SourceOutput
from sreagent.telemetry import Event, Sample
from sreagent.telemetry.batch import MAX_LABEL_VALUE_LEN
from sreagent.telemetry.names import entity

SOURCE = "ebpf"
QUANTILES = (0.5, 0.9, 0.99)

# include/net/tcp_states.h; used when the running kernel's format file has no symbol table.
TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
    12: "NEW_SYN_RECV", 13: "BOUND_INACTIVE",
}  # fmt: skip
AF_INET, AF_INET6 = 2, 10
K = TypeVar("K")


@dataclass(frozen=True)
class ExecRecord:
    mono_ns: int
    pid: int
    uid: int
    comm: str
    filename: str


@dataclass(frozen=True)
class ExitRecord:
    mono_ns: int
    pid: int
    comm: str


@dataclass(frozen=True)
class OomRecord:
    mono_ns: int
    pid: int
    comm: str
    total_vm_kb: int | None = None
    anon_rss_kb: int | None = None
    uid: int | None = None


@dataclass(frozen=True)
class Connection:
    family: int
    saddr: bytes
    sport: int
    daddr: bytes
    dport: int
    state: int


@dataclass
class IntervalData:
    """Raw eBPF data of one interval, as a backend drained it."""

    execs: list[ExecRecord] = field(default_factory=list)
    exits: list[ExitRecord] = field(default_factory=list)
    ooms: list[OomRecord] = field(default_factory=list)
    exec_count: int = 0
    """All execs of the interval, including those beyond the per-interval event cap."""
    exit_count: int = 0
    retransmits: dict[Connection, int] = field(default_factory=dict)
    state_changes: dict[tuple[int, int], int] = field(default_factory=dict)
    drops: dict[int, int] = field(default_factory=dict)
    """Drop reason number -> packets."""
    block_latency: dict[int, dict[int, int]] = field(default_factory=dict)
    """Kernel ``dev_t`` -> log2 microsecond bucket -> requests."""
    runq_latency: dict[int, int] = field(default_factory=dict)
    """log2 microsecond bucket -> wakeups."""
    lost: int = 0
    """Events lost in the kernel (ring buffer full) or dropped by a cap, this interval."""

    def merge(self, other: IntervalData) -> None:
        """Add ``other`` into this one."""
        self.execs.extend(other.execs)
        self.exits.extend(other.exits)
        self.ooms.extend(other.ooms)
        self.exec_count += other.exec_count
        self.exit_count += other.exit_count
        self.lost += other.lost
        _add_counts(self.retransmits, other.retransmits)
        _add_counts(self.state_changes, other.state_changes)
        _add_counts(self.drops, other.drops)
        _add_counts(self.runq_latency, other.runq_latency)
        for dev, hist in other.block_latency.items():
            _add_counts(self.block_latency.setdefault(dev, {}), hist)


def _add_counts(target: dict[K, int], source: Mapping[K, int]) -> None:
    for key, value in source.items():
        target[key] = target.get(key, 0) + value


def log2_quantile_seconds(hist: Mapping[int, int], q: float) -> float:
    """The ``q`` quantile of a log2 histogram of microseconds, in seconds.

    Bucket ``b`` holds values in ``[2**b, 2**(b+1))`` microseconds (bucket 0 also holds 0, as
    ``bpf_log2l`` and bpftrace's ``hist`` put it). Within the bucket the values are assumed
    evenly spread, so the estimate is within a factor of two of the truth by construction.
    """
    total = sum(hist.values())
    if total <= 0:
        raise ValueError("empty histogram")
    rank = q * total
    seen = 0
    for bucket in sorted(hist):
        count = hist[bucket]
        if count <= 0:
            continue
        if seen + count >= rank:
            low = 0.0 if bucket == 0 else float(2**bucket)
            high = float(2 ** (bucket + 1))
            fraction = (rank - seen) / count
            return (low + (high - low) * fraction) / 1e6
        seen += count
    last = max(b for b, c in hist.items() if c > 0)
    return float(2 ** (last + 1)) / 1e6


def format_address(family: int, raw: bytes) -> str:
    if family == AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == AF_INET6:
        return str(ipaddress.IPv6Address(raw[:16]))
    return raw.hex()


def _label(value: str) -> str:
    return value[:MAX_LABEL_VALUE_LEN]


def decode_kernel_dev(dev: int) -> tuple[int, int]:
    """Major and minor of a kernel-internal ``dev_t`` (include/linux/kdev_t.h: MINORBITS=20)."""
    return dev >> 20, dev & ((1 << 20) - 1)


@dataclass
class Summariser:
    """Names and caps for turning :class:`IntervalData` into a :class:`SourceOutput`."""

    disk_name: Callable[[int], str]
    """Kernel ``dev_t`` -> block device name (``sda``); the reader looks it up in /sys."""
    drop_reasons: Mapping[int, str] = field(default_factory=dict)
    tcp_states: Mapping[int, str] = field(default_factory=lambda: dict(TCP_STATES))
    max_connection_events: int = 100
    """Connections with retransmits reported per interval (the most retransmitting first)."""

    def summarise(
        self, data: IntervalData, now_ns: int, mono_now_ns: int, elapsed_s: float, lost_total: int
    ) -> SourceOutput:
        out = SourceOutput()

        def wall(mono_ns: int) -> int:
            return max(0, min(now_ns, now_ns - (mono_now_ns - mono_ns)))

        for ex in data.execs:
            out.events.append(
                Event(
                    ts_ns=wall(ex.mono_ns),
                    kind="process_exec",
                    entity=entity("process", ex.pid),
                    source=SOURCE,
                    message=_label(ex.filename),
                    attributes={
                        "pid": str(ex.pid),
                        "uid": str(ex.uid),
                        "comm": _label(ex.comm),
                        "filename": _label(ex.filename),
                    },
                )
            )
        for gone in data.exits:
            out.events.append(
                Event(
                    ts_ns=wall(gone.mono_ns),
                    kind="process_exit",
                    entity=entity("process", gone.pid),
                    source=SOURCE,
                    attributes={"pid": str(gone.pid), "comm": _label(gone.comm)},
                )
            )
        for oom in data.ooms:
            attrs = {"pid": str(oom.pid), "comm": _label(oom.comm)}
            if oom.total_vm_kb is not None:
                attrs["total_vm_kb"] = str(oom.total_vm_kb)
            if oom.anon_rss_kb is not None:
                attrs["anon_rss_kb"] = str(oom.anon_rss_kb)
            if oom.uid is not None:
                attrs["uid"] = str(oom.uid)
            out.events.append(
                Event(
                    ts_ns=wall(oom.mono_ns),
                    kind="oom_kill",
                    entity=entity("process", oom.pid),
                    source=SOURCE,
                    severity="error",
                    message=f"OOM victim {oom.pid} ({oom.comm})",
                    attributes=attrs,
                )
            )

        ranked = sorted(data.retransmits.items(), key=lambda kv: (-kv[1], repr(kv[0])))
        for conn, count in ranked[: self.max_connection_events]:
            saddr, daddr = (
                format_address(conn.family, conn.saddr),
                format_address(conn.family, conn.daddr),
            )
            state = self.tcp_states.get(conn.state, str(conn.state))
            out.events.append(
                Event(
                    ts_ns=now_ns,
                    kind="tcp_retransmit",
                    entity="host",
                    source=SOURCE,
                    severity="warning",
                    message=f"{count} retransmits {saddr}:{conn.sport} -> {daddr}:{conn.dport} ({state})",
                    attributes={
                        "count": str(count),
                        "saddr": saddr,
                        "sport": str(conn.sport),
                        "daddr": daddr,
                        "dport": str(conn.dport),
                        "state": state,
                    },
                )
            )
        if len(ranked) > self.max_connection_events:
            data.lost += len(ranked) - self.max_connection_events

        for (old, new), count in sorted(data.state_changes.items()):
            old_name = self.tcp_states.get(old, str(old))
            new_name = self.tcp_states.get(new, str(new))
            out.events.append(
                Event(
                    ts_ns=now_ns,
                    kind="tcp_state_change",
                    entity="host",
                    source=SOURCE,
                    message=f"{count} x {old_name} -> {new_name}",
                    attributes={"from": old_name, "to": new_name, "count": str(count)},
                )
            )

        for reason, count in sorted(data.drops.items()):
            name = self.drop_reasons.get(reason, str(reason))
            out.events.append(
                Event(
                    ts_ns=now_ns,
                    kind="packet_drop",
                    entity="host",
                    source=SOURCE,
                    message=f"{count} packets dropped: {name}",
                    attributes={"reason": name, "count": str(count)},
                )
            )
            if elapsed_s > 0:
                out.add(
                    Sample(
                        ts_ns=now_ns,
                        metric="packet_drops_per_second",
                        entity="host",
                        labels={"reason": name},
                        value=count / elapsed_s,
                    )
                )

        for dev, hist in sorted(data.block_latency.items()):
            if sum(hist.values()) <= 0:
                continue
            disk = entity("disk", self.disk_name(dev))
            for q in QUANTILES:
                out.add(
                    Sample(
                        ts_ns=now_ns,
                        metric="disk_request_latency_seconds",
                        entity=disk,
                        labels={"quantile": str(q)},
                        value=log2_quantile_seconds(hist, q),
                    )
                )
        if sum(data.runq_latency.values()) > 0:
            for q in QUANTILES:
                out.add(
                    Sample(
                        ts_ns=now_ns,
                        metric="runqueue_latency_seconds",
                        entity="host",
                        labels={"quantile": str(q)},
                        value=log2_quantile_seconds(data.runq_latency, q),
                    )
                )
        if elapsed_s > 0:
            out.add(
                Sample(
                    ts_ns=now_ns,
                    metric="process_execs_per_second",
                    entity="host",
                    value=data.exec_count / elapsed_s,
                )
            )
            out.add(
                Sample(
                    ts_ns=now_ns,
                    metric="process_exits_per_second",
                    entity="host",
                    value=data.exit_count / elapsed_s,
                )
            )
        out.add(
            Sample(
                ts_ns=now_ns,
                metric="collector_ebpf_lost_events_total",
                entity="collector",
                value=float(lost_total + data.lost),
            )
        )
        return out
