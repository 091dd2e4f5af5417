"""``net-loss``: TCP bulk traffic across a veth pair with random loss and a rate limit.

Two network namespaces (``sreagent-lab-<tag>-a`` and ``-b``) are joined by a veth pair with
addresses from the benchmarking range 198.18.0.0/15 (a /30 derived from the tag). Loss and
delay come from netem on side a when the kernel has it; otherwise from an nftables table on
side b dropping ``numgen random mod 100 < N`` of incoming TCP and a ``tbf`` rate limit on side
a's egress (queueing delay and tail drops). A sender in a streams to a receiver in b, so TCP
retransmits. With ``topology="host-peer"`` side a is the host's own namespace (only the lab
veth and its /30 are added there), so a collector running on the host sees the retransmits.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Literal

from pydantic import Field

from sreagent.lab.live._errors import LabFailed
from sreagent.lab.live._host import run_tool
from sreagent.lab.live._injector import Injector, InjectorOptions
from sreagent.lab.live._names import ifname, run_name
from sreagent.lab.live._resources import (
    Netns,
    NftTable,
    Resource,
    RootQdisc,
    VethPair,
    Worker,
    netns_cmd,
    worker_command,
)

_LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")


class NetLossOptions(InjectorOptions):
    loss_percent: int = Field(20, ge=1, le=90)
    rate: str = Field("2mbit", pattern=r"^[0-9]+(bit|kbit|mbit|gbit)$")
    """tbf rate on side a (nftables mode); netem mode adds ``delay_ms`` instead."""
    delay_ms: int = Field(40, ge=0, le=5000)
    mechanism: Literal["auto", "netem", "nftables+tbf"] = "auto"
    """auto: netem when ``tc qdisc add ... netem`` works on this kernel, else nftables+tbf."""
    topology: Literal["netns-pair", "host-peer"] = "netns-pair"
    port: int = Field(5201, ge=1024, le=65535)
    send_kbit: int = Field(0, ge=0, le=1_000_000)
    """The sender's pace in kbit/s; 0 = bulk (as fast as the link allows). Below the tbf
    rate, the healthy link carries it without tail drops, so retransmits are the loss's."""
    impair_after_s: float = Field(0.0, ge=0.0, le=600.0)
    """Seconds the traffic runs over the healthy link (tbf's rate limit, or netem's delay, but
    no loss) before the loss starts. A path that exists and carries traffic before it degrades
    is what an incident looks like; a link created at the moment of the fault looks like a
    link flap to the analysis."""


def lab_subnet(tag: str) -> ipaddress.IPv4Network:
    """A /30 inside 198.18.0.0/15 chosen by the tag, so concurrent runs rarely collide."""
    index = int(tag, 16) % (_LAB_RANGE.num_addresses // 4)
    return ipaddress.IPv4Network((int(_LAB_RANGE.network_address) + 4 * index, 30))


class _Shaping(Resource):
    """Loss and delay on the link: netem on side a, or nftables drop on b plus tbf on a."""

    kind = "shaping"

    def __init__(self, owner: NetLoss) -> None:
        super().__init__(f"{owner.if_a}/{owner.if_b}", owner.ns_a or "host")
        self.owner = owner
        self.mechanism: str | None = None
        self.parts: list[Resource] = []
        self._lock = threading.Lock()
        self._cancelled = False
        self._timer: threading.Timer | None = None
        self.impaired_wall_ns: int | None = None
        """Wall-clock time the loss started (None until it has)."""
        self.error: str | None = None
        """Why the delayed loss could not start (None when it did, or has not been due)."""

    def present(self) -> bool:
        return False  # it lives on links this injection creates

    def _create(self) -> None:
        o, w = self.owner.opts, self.owner
        loss: list[Resource | list[str]] = []  # what starts the loss: a resource or a tc command
        if o.mechanism in ("auto", "netem"):
            # Delay now; the loss joins it when the impairment starts (tc qdisc change).
            netem = RootQdisc(w.if_a, w.ns_a, ["netem", "delay", f"{o.delay_ms}ms"])
            try:
                netem.create()
            except LabFailed:
                if o.mechanism == "netem":
                    raise
            else:
                self.parts, self.mechanism, self.created = [netem], "netem", True
                loss = [[*netns_cmd(w.ns_a), "tc", "qdisc", "change", "dev", w.if_a, "root",
                         "netem", "loss", f"{o.loss_percent}%", "delay", f"{o.delay_ms}ms"]]
        if self.mechanism is None:
            tbf = RootQdisc(
                w.if_a,
                w.ns_a,
                ["tbf", "rate", o.rate, "burst", "32kbit", "latency", f"{max(o.delay_ms, 50)}ms"],
            )
            tbf.create()
            self.parts, self.mechanism, self.created = [tbf], "nftables+tbf", True
            loss = [NftTable(
                run_name(w.tag),
                w.ns_b,
                "\n".join(
                    [
                        "  chain input {",
                        "    type filter hook input priority filter; policy accept;",
                        f'    iifname "{w.if_b}" meta l4proto tcp numgen random mod 100 < {o.loss_percent} counter drop',
                        "  }",
                    ]
                ),
            )]
        if o.impair_after_s <= 0:
            self._impair(loss)
            if self.error:
                raise LabFailed(self.error)
            return
        self._timer = threading.Timer(o.impair_after_s, self._impair, args=(loss,))
        self._timer.daemon = True
        self._timer.start()

    def _impair(self, loss: list[Resource | list[str]]) -> None:
        """Start the loss (on a timer thread when delayed); undo may race it, hence the lock."""
        with self._lock:
            if self._cancelled:
                return
            try:
                for step in loss:
                    if isinstance(step, Resource):
                        step.create()
                        self.parts.append(step)
                    else:
                        run_tool(step, f"adding loss to netem on {self.owner.if_a}")
            except LabFailed as err:
                self.error = str(err)
                return
            self.impaired_wall_ns = time.time_ns()

    def _remove(self) -> None:
        with self._lock:
            self._cancelled = True  # a loss not started yet never starts
        if self._timer is not None:
            self._timer.cancel()
        for part in reversed(self.parts):
            part.remove()


class NetLoss(Injector):
    name = "net-loss"
    summary = "TCP across a veth pair with random loss (netem, or nftables numgen drop + tbf)"
    fault_class = "packet_loss"
    observe = (
        "RetransSegs in /proc/net/snmp of side a's namespace (ip netns exec ... nstat) grows; "
        "`ss -ti` shows retrans on the sender's socket; the nft rule's counter counts drops"
    )
    Options = NetLossOptions
    needs_tools = (("ip", "for namespaces and veth (iproute2)"), ("tc", "for the qdisc (iproute2)"))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        o = self.options
        assert isinstance(o, NetLossOptions)
        self.opts = o
        self.ns_a: str | None = None if o.topology == "host-peer" else run_name(self.tag, "a")
        self.ns_b = run_name(self.tag, "b")
        self.if_a, self.if_b = ifname(self.tag, "a"), ifname(self.tag, "b")
        subnet = lab_subnet(self.tag)
        self.addr_a, self.addr_b = str(subnet[1]), str(subnet[2])

    def preflight(self) -> None:
        if self.opts.mechanism != "netem":
            from sreagent.lab.live._host import require_tool

            require_tool("nft", "for the random-drop rule (package nftables)")
        super().preflight()
        if self.ns_a is None:
            taken = run_tool(["ip", "-o", "-4", "addr", "show"], "listing host addresses").stdout
            if f" {self.addr_a}/" in taken:
                from sreagent.lab.live._errors import LabRefused

                raise LabRefused(
                    f"net-loss refuses to run: {self.addr_a} is already configured on this host"
                )

    def _build(self) -> list[Resource]:
        self.shaping = _Shaping(self)
        self._veth = VethPair(self.if_a, self.ns_a, self.if_b, self.ns_b)
        namespaces = [Netns(n) for n in (self.ns_a, self.ns_b) if n is not None]
        seconds = self.duration_s
        receiver = worker_command(
            "receive", self.run, seconds=seconds + 1, host=self.addr_b, port=self.opts.port
        )
        sender = worker_command(
            "send", self.run, seconds=seconds, host=self.addr_b, port=self.opts.port,
            kbit=self.opts.send_kbit,
        )
        return [
            *namespaces,
            self._veth,
            self.shaping,
            Worker(self.run, "receiver", receiver, netns=self.ns_b),
            Worker(self.run, "sender", sender, netns=self.ns_a),
        ]

    def _configure(self, resource: Resource) -> None:
        if resource is not self._veth:
            return
        for dev, ns, addr in (
            (self.if_a, self.ns_a, self.addr_a),
            (self.if_b, self.ns_b, self.addr_b),
        ):
            ip = ["ip", "-n", ns] if ns else ["ip"]
            run_tool([*ip, "addr", "add", f"{addr}/30", "dev", dev], f"addressing {dev}")
            run_tool([*ip, "link", "set", dev, "up"], f"bringing {dev} up")

    @property
    def mechanism(self) -> str | None:
        return self.shaping.mechanism if self.resources else None

    def fault_started_ns(self) -> int | None:
        """When the loss began (wall clock ns); None while the healthy pre-roll still runs."""
        if self.shaping.error:
            raise LabFailed(f"net-loss: the delayed loss could not start: {self.shaping.error}")
        return self.shaping.impaired_wall_ns

    def _entity(self) -> str:
        return f"nic/{self.if_a}"

    def sender_netns(self) -> str | None:
        return self.ns_a

    def netns_exec(self, side: str) -> list[str]:
        return netns_cmd(self.ns_a if side == "a" else self.ns_b)

    def related_entities(self) -> list[str]:
        return [f"nic/{self.if_b}", *super().related_entities()]


__all__ = ["NetLoss", "NetLossOptions", "lab_subnet"]
