"""Network interface source: rtnetlink RTM_GETSTATS + RTM_GETLINK, fallback ``/proc/net/dev``.

rtnetlink gives 64-bit counters, the carrier state and the kernel's count of carrier changes;
/proc/net/dev has the counters only (carrier then comes from sysfs). Carrier transitions
between two reads become ``link_down`` / ``link_up`` events.

The counters come from an RTM_GETSTATS dump asking for IFLA_STATS_LINK_64 only: about 200
bytes per link, against some 1,500 for an RTM_GETLINK message, whose inet/inet6 settings
the kernel formats on every dump (46 -> 22 us of kernel time for four links here, and a
seventh of the bytes to walk). Names, carrier and carrier changes come from an RTM_GETLINK
dump that is repeated only when they can have changed: the source listens to the kernel's
link notifications (RTNLGRP_LINK, sent for every carrier change, rename, new or removed
link), re-dumps when one arrived or the notification queue overflowed, when the stats dump
shows an unknown link, and every ``relist_every`` reads as a safety net. Kernels without
RTM_GETSTATS (before 4.7) or a refused subscription dump RTM_GETLINK at every read.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from sreagent.collector._common import (
    NO_LABELS,
    Counters,
    Interval,
    KeptFiles,
    capability,
    os_reason,
)
from sreagent.collector._nl import NLA_TYPE_MASK, NLM_F_DUMP, NetlinkError, NetlinkSocket
from sreagent.collector._source import Roots, SampleRow, SourceOutput
from sreagent.telemetry import Event, SourceCapability

# include/uapi/linux/rtnetlink.h, if_link.h
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWSTATS = 92
RTM_GETSTATS = 94
RTMGRP_LINK = 1
"""Multicast group mask of link notifications (RTNLGRP_LINK = 1)."""
IFLA_STATS_LINK_64 = 1
IF_STATS_MSG = struct.Struct("=BBHII")
"""if_stats_msg: family, pad, pad, ifindex, filter_mask."""
RELIST_EVERY = 60
IFLA_IFNAME = 3
IFLA_OPERSTATE = 16
IFLA_STATS64 = 23
IFLA_CARRIER = 33
IFLA_CARRIER_CHANGES = 35
IFINFOMSG = struct.Struct("=BxHiII")
STATS64_HEAD = struct.Struct("=8Q")
"""rx/tx packets, rx/tx bytes, rx/tx errors, rx/tx dropped: the first eight u64 fields."""


class LinkStats(NamedTuple):
    """One link's counters (a named tuple: built for every link at every read, and a frozen
    dataclass's ``__init__`` costs several times as much)."""

    name: str
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    rx_errors: int
    tx_errors: int
    rx_dropped: int
    tx_dropped: int
    carrier: bool | None = None
    carrier_changes: int | None = None


_RATES: tuple[tuple[str, dict[str, str]], ...] = (
    ("network_receive_bytes_per_second", NO_LABELS),
    ("network_transmit_bytes_per_second", NO_LABELS),
    ("network_receive_packets_per_second", NO_LABELS),
    ("network_transmit_packets_per_second", NO_LABELS),
    ("network_errors_per_second", {"direction": "receive"}),
    ("network_errors_per_second", {"direction": "transmit"}),
    ("network_drops_per_second", {"direction": "receive"}),
    ("network_drops_per_second", {"direction": "transmit"}),
)
"""Metric and labels of each counter, in the order :meth:`NetlinkSource.read` passes them.
The label dicts are shared by the rows (nothing mutates labels)."""

_WANTED = frozenset({IFLA_IFNAME, IFLA_STATS64, IFLA_CARRIER, IFLA_CARRIER_CHANGES})


def parse_link_dump(replies: list[tuple[int, memoryview]]) -> list[LinkStats]:
    """RTM_NEWLINK messages of a dump as link statistics (links without IFLA_STATS64 skipped)."""
    return [link for _, link in parse_links(replies)]


def parse_links(replies: list[tuple[int, memoryview]]) -> list[tuple[int, LinkStats]]:
    """``(ifindex, stats)`` of each RTM_NEWLINK message of a dump (links without
    IFLA_STATS64 skipped).

    A link message carries some fifty attributes; only four are wanted, so the loop reads
    attribute headers in place, slices only those four, and stops once it has them (the
    kernel puts them among the first thirty, rtnl_fill_ifinfo; the nested link info and
    per-family blocks come after).
    """
    links = []
    unpack_header = struct.Struct("=HH").unpack_from
    for msg_type, payload in replies:
        if msg_type != RTM_NEWLINK:
            continue
        name = None
        stats = None
        carrier = None
        changes = None
        offset = IFINFOMSG.size
        size = len(payload)
        found = 0
        while offset + 4 <= size and found < 4:
            length, attr_type = unpack_header(payload, offset)
            if length < 4 or offset + length > size:
                break  # a truncated message: nothing past here can be trusted
            attr_type &= NLA_TYPE_MASK
            if attr_type in _WANTED:
                found += 1
                start = offset + 4
                if attr_type == IFLA_IFNAME:
                    name = bytes(payload[start : offset + length]).rstrip(b"\0").decode()
                elif attr_type == IFLA_STATS64:
                    stats = STATS64_HEAD.unpack_from(payload, start)
                elif attr_type == IFLA_CARRIER:
                    carrier = payload[start] == 1
                else:
                    (changes,) = struct.unpack_from("=I", payload, start)
            offset += (length + 3) & ~3
        if name is None or stats is None:
            continue
        index = IFINFOMSG.unpack_from(payload, 0)[2]
        rxp, txp, rxb, txb, rxe, txe, rxd, txd = stats
        links.append(
            (index, LinkStats(name, rxb, txb, rxp, txp, rxe, txe, rxd, txd, carrier, changes))
        )
    return links


def parse_stats_dump(replies: list[tuple[int, memoryview]]) -> list[tuple[int, tuple[int, ...]]]:
    """``(ifindex, counters)`` of each RTM_NEWSTATS message: the first eight u64 fields of
    its IFLA_STATS_LINK_64 (struct rtnl_link_stats64: rx/tx packets, rx/tx bytes, rx/tx
    errors, rx/tx dropped); messages without it are skipped."""
    out = []
    unpack_header = struct.Struct("=HH").unpack_from
    head = IF_STATS_MSG.size
    need = 4 + STATS64_HEAD.size
    for msg_type, payload in replies:
        if msg_type != RTM_NEWSTATS or len(payload) < head:
            continue
        offset = head
        size = len(payload)
        while offset + 4 <= size:
            length, attr_type = unpack_header(payload, offset)
            if length < 4 or offset + length > size:
                break  # a truncated message: nothing past here can be trusted
            if attr_type & NLA_TYPE_MASK == IFLA_STATS_LINK_64 and length >= need:
                index = IF_STATS_MSG.unpack_from(payload, 0)[3]
                out.append((index, STATS64_HEAD.unpack_from(payload, offset + 4)))
                break
            offset += (length + 3) & ~3
    return out


def stats_dump_request() -> bytes:
    """The RTM_GETSTATS dump request body: every link, IFLA_STATS_LINK_64 only."""
    return IF_STATS_MSG.pack(socket.AF_UNSPEC, 0, 0, 0, 1 << (IFLA_STATS_LINK_64 - 1))


def link_dump_request() -> bytes:
    """The RTM_GETLINK dump request body (an all-zero ifinfomsg, any family)."""
    return IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)


def parse_net_dev(raw: bytes) -> list[LinkStats]:
    """/proc/net/dev: two header lines, then ``name: 8 receive and 8 transmit columns``."""
    links = []
    for line in raw.splitlines()[2:]:
        name, _, rest = line.partition(b":")
        f = rest.split()
        if len(f) < 16:
            continue
        links.append(
            LinkStats(
                name=name.strip().decode(),
                rx_bytes=int(f[0]),
                rx_packets=int(f[1]),
                rx_errors=int(f[2]),
                rx_dropped=int(f[3]),
                tx_bytes=int(f[8]),
                tx_packets=int(f[9]),
                tx_errors=int(f[10]),
                tx_dropped=int(f[11]),
            )
        )
    return links


def _int(raw: bytes | None) -> int | None:
    """A sysfs integer; None when absent or unreadable (``carrier`` of a down link: EINVAL)."""
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


class NetlinkSource:
    """``netlink``: per-interface rates, errors, drops, carrier state and changes."""

    name = "netlink"
    optional = False

    def __init__(
        self, roots: Roots, *, use_netlink: bool = True, relist_every: int = RELIST_EVERY
    ) -> None:
        self._net_dev = roots.proc / "net/dev"
        self._class_net = roots.sys / "class/net"
        self._counters = Counters()
        self._interval = Interval()
        self._carrier: dict[str, bool] = {}
        self._entities: dict[str, str] = {}
        """``nic/<name>`` of every link of the last read (built once per link)."""
        self._files = KeptFiles()
        self._sock: NetlinkSocket | None = None
        self._notify: socket.socket | None = None
        """Subscribed to link notifications; None: RTM_GETLINK at every read."""
        self._known: dict[int, LinkStats] = {}
        """Each link's last RTM_GETLINK view by ifindex (name, carrier, carrier changes)."""
        self._relist_every = relist_every
        self._reads = 0
        self.relists = 0
        """RTM_GETLINK dumps made (exposed for tests)."""
        self._reason = "disabled by configuration; /proc/net/dev"
        if use_netlink:
            try:
                self._sock = NetlinkSocket(socket.NETLINK_ROUTE)
                self._sock.request(RTM_GETLINK, NLM_F_DUMP, link_dump_request())
                self._reason = "rtnetlink RTM_GETLINK IFLA_STATS64"
            except OSError as err:
                self.close()
                self._reason = f"rtnetlink: {os_reason(err)}; /proc/net/dev"
        if self._sock is not None:
            self._subscribe()

    def _subscribe(self) -> None:
        """Listen to link notifications when the kernel answers RTM_GETSTATS; else stay on
        RTM_GETLINK at every read and say why."""
        assert self._sock is not None
        try:
            # Subscribed before the first listing, so no change between the two is missed.
            notify = socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
            )
        except OSError as err:
            self._reason += f" at every read (link notifications: {os_reason(err)})"
            return
        try:
            notify.bind((0, RTMGRP_LINK))
            notify.setblocking(False)
            self._sock.request(RTM_GETSTATS, NLM_F_DUMP, stats_dump_request())
        except OSError as err:
            notify.close()
            what = "RTM_GETSTATS" if isinstance(err, NetlinkError) else "link notifications"
            self._reason += f" at every read ({what}: {os_reason(err)})"
            return
        self._notify = notify
        self._reason = (
            "rtnetlink RTM_GETSTATS IFLA_STATS_LINK_64; RTM_GETLINK on link notifications "
            f"and every {self._relist_every} reads"
        )

    def capability(self) -> SourceCapability:
        return capability(self.name, "kernel" if self._sock else "fallback", self._reason)

    def _notified(self) -> bool:
        """Drain the link notifications; True when any arrived or some were lost."""
        notify = self._notify
        assert notify is not None
        seen = False
        while True:
            try:
                if not notify.recv(65536):
                    return seen
            except BlockingIOError:
                return seen
            except OSError:  # ENOBUFS: the queue overflowed, notifications were lost
                seen = True
                continue
            seen = True

    def _relist(self) -> list[LinkStats]:
        assert self._sock is not None
        self.relists += 1
        links = parse_links(self._sock.request(RTM_GETLINK, NLM_F_DUMP, link_dump_request()))
        self._known = dict(links)
        return [link for _, link in links]

    def _links(self) -> list[LinkStats]:
        if self._sock is not None:
            try:
                if self._notify is None:
                    return self._relist()
                return self._stats_links()
            except OSError as err:
                # A socket that broke at run time: keep reporting, from procfs, and say so.
                self.close()
                self._reason = f"rtnetlink failed while running: {os_reason(err)}; /proc/net/dev"
        files = self._files
        links = parse_net_dev(files.read_required(str(self._net_dev)))
        out = []
        for link in links:
            carrier = _int(files.read(f"{self._class_net}/{link.name}/carrier"))
            changes = _int(files.read(f"{self._class_net}/{link.name}/carrier_changes"))
            out.append(
                link._replace(
                    carrier=None if carrier is None else carrier == 1, carrier_changes=changes
                )
            )
        return out

    def _stats_links(self) -> list[LinkStats]:
        """Counters from RTM_GETSTATS joined with the last RTM_GETLINK view of each link."""
        assert self._sock is not None
        self._reads += 1
        if self._notified() or not self._known or self._reads % self._relist_every == 0:
            return self._relist()
        stats = parse_stats_dump(self._sock.request(RTM_GETSTATS, NLM_F_DUMP, stats_dump_request()))
        known = self._known
        out = []
        for index, (rxp, txp, rxb, txb, rxe, txe, rxd, txd) in stats:
            link = known.get(index)
            if link is None:
                # A link that appeared after the last listing: its name is needed.
                return self._relist()
            out.append(
                LinkStats(
                    link.name,
                    rxb,
                    txb,
                    rxp,
                    txp,
                    rxe,
                    txe,
                    rxd,
                    txd,
                    link.carrier,
                    link.carrier_changes,
                )
            )
        return out

    def read(self, now_ns: int) -> SourceOutput:
        seconds = self._interval.advance(now_ns)
        samples: list[SampleRow] = []
        events: list[Event] = []
        links = self._links()
        deltas = self._counters.deltas
        for link in links:
            name = link.name
            entity = self._entities.get(name)
            if entity is None:
                entity = self._entities[name] = f"nic/{name}"
            changed = deltas(
                name,
                (
                    link.rx_bytes,
                    link.tx_bytes,
                    link.rx_packets,
                    link.tx_packets,
                    link.rx_errors,
                    link.tx_errors,
                    link.rx_dropped,
                    link.tx_dropped,
                ),
                64,
            )
            if changed is not None and seconds:
                for (metric, labels), d in zip(_RATES, changed, strict=True):
                    if d is not None:
                        samples.append((now_ns, metric, entity, labels, d / seconds))
            if link.carrier_changes is not None:
                samples.append(
                    (
                        now_ns,
                        "network_carrier_changes_total",
                        entity,
                        NO_LABELS,
                        link.carrier_changes,
                    )
                )
            if link.carrier is not None:
                samples.append(
                    (now_ns, "network_link_up", entity, NO_LABELS, 1.0 if link.carrier else 0.0)
                )
                before = self._carrier.get(name)
                self._carrier[name] = link.carrier
                if before is not None and before != link.carrier:
                    events.append(
                        Event.model_construct(
                            ts_ns=now_ns,
                            kind="link_up" if link.carrier else "link_down",
                            entity=entity,
                            source=self.name,
                            severity="info" if link.carrier else "warning",
                            message=f"{name} carrier {'up' if link.carrier else 'down'}",
                            attributes={},
                        )
                    )
        if len(self._entities) != len(links):
            present = {link.name for link in links}
            self._counters.forget_unless(lambda key: key in present)
            self._entities = {n: e for n, e in self._entities.items() if n in present}
        return SourceOutput(rows=samples, events=events)

    def close(self) -> None:
        self._files.close()
        if self._notify is not None:
            self._notify.close()
            self._notify = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
