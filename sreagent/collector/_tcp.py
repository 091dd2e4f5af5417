"""TCP counters: ``/proc/net/snmp`` (Tcp) and ``/proc/net/netstat`` (TcpExt).

Both files hold pairs of lines, a header line of names and a value line, each starting with
the same ``Group:`` prefix (net/ipv4/proc.c).
"""

from __future__ import annotations

from sreagent.collector._common import (
    NO_LABELS,
    Counters,
    Interval,
    KeptFiles,
    capability,
    read_optional,
)
from sreagent.collector._source import Roots, SampleRow, SourceOutput
from sreagent.telemetry import SourceCapability


def parse_snmp(raw: bytes) -> dict[str, dict[str, int]]:
    """``{"Tcp": {"RetransSegs": 12, ...}, "TcpExt": {...}}`` from snmp or netstat files."""
    out: dict[str, dict[str, int]] = {}
    lines = raw.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        group, _, names = header.partition(b":")
        vgroup, _, nums = values.partition(b":")
        if group != vgroup:
            continue
        out[group.decode()] = {
            k.decode(): int(v) for k, v in zip(names.split(), nums.split(), strict=False)
        }
    return out


def parse_snmp_group(raw: bytes, group: bytes, keys: tuple[str, ...]) -> dict[str, int]:
    """Only ``keys`` of one group: cheaper than :func:`parse_snmp` on the long TcpExt lines."""
    prefix = group + b":"
    start = raw.find(prefix) if raw.startswith(prefix) else raw.find(b"\n" + prefix) + 1
    if start <= 0 and not raw.startswith(prefix):
        return {}
    header_end = raw.find(b"\n", start)
    values_end = raw.find(b"\n", header_end + 1)
    names = raw[start + len(prefix) : header_end].split()
    values = raw[header_end + 1 + len(prefix) : values_end if values_end >= 0 else None].split()
    out = {}
    for key in keys:
        try:
            out[key] = int(values[names.index(key.encode())])
        except (ValueError, IndexError):
            continue
    return out


class TcpSource:
    """``tcp``: retransmit ratio and rate, listen overflows and drops."""

    name = "tcp"
    optional = False

    def __init__(self, roots: Roots) -> None:
        self._snmp = roots.proc / "net/snmp"
        self._netstat = roots.proc / "net/netstat"
        self._counters = Counters()
        self._interval = Interval()
        self._files = KeptFiles()

    def capability(self) -> SourceCapability:
        if read_optional(self._snmp) is None:
            return capability(self.name, "off", f"{self._snmp} unreadable")
        return capability(self.name, "kernel", f"{self._snmp}, {self._netstat}")

    def read(self, now_ns: int) -> SourceOutput:
        seconds = self._interval.advance(now_ns)
        tcp = parse_snmp_group(
            self._files.read_required(str(self._snmp)),
            b"Tcp",
            ("OutSegs", "RetransSegs", "CurrEstab"),
        )
        raw_ext = self._files.read(str(self._netstat))
        ext = (
            parse_snmp_group(raw_ext, b"TcpExt", ("ListenOverflows", "ListenDrops"))
            if raw_ext is not None
            else {}
        )
        out: list[SampleRow] = []
        if "CurrEstab" in tcp:
            out.append((now_ns, "tcp_established", "host", NO_LABELS, tcp["CurrEstab"]))
        delta = self._counters.delta
        # RetransSegs and OutSegs are unsigned long in the kernel but printed through the
        # 64-bit SNMP MIB on every 64-bit kernel.
        out_segs = delta("OutSegs", tcp["OutSegs"], 64) if "OutSegs" in tcp else None
        retrans = delta("RetransSegs", tcp["RetransSegs"], 64) if "RetransSegs" in tcp else None
        if seconds and retrans is not None:
            out.append((now_ns, "tcp_retransmits_per_second", "host", NO_LABELS, retrans / seconds))
            if out_segs:
                # OutSegs excludes retransmitted segments (RFC 1213 tcpOutSegs), so this is
                # retransmits per fresh segment, the figure `nstat`-based alerts use.
                out.append((now_ns, "tcp_retransmit_ratio", "host", NO_LABELS, retrans / out_segs))
        for metric, key in (
            ("tcp_listen_overflows_per_second", "ListenOverflows"),
            ("tcp_listen_drops_per_second", "ListenDrops"),
        ):
            if key in ext:
                d = delta(key, ext[key], 64)
                if d is not None and seconds:
                    out.append((now_ns, metric, "host", NO_LABELS, d / seconds))
        return SourceOutput(rows=out)

    def close(self) -> None:
        self._files.close()
