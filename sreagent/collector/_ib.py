"""InfiniBand/RDMA source: port counters from ``/sys/class/infiniband/<dev>/ports/<n>/``.

Counter meanings: the IBTA PortCounters attributes as exposed by drivers/infiniband/core/
sysfs.c. ``port_rcv_data`` and ``port_xmit_data`` count octets divided by four. Hardware
counters (``hw_counters/``, mlx5 and others) add transport-level errors such as
``out_of_buffer`` and ``local_ack_timeout_err``.
"""

from __future__ import annotations

import os
import re

from sreagent.collector._common import Counters, Interval, capability, read_optional, row
from sreagent.collector._source import Roots, SampleRow, SourceOutput
from sreagent.telemetry import IbPortInfo, SourceCapability

ERROR_COUNTERS = (
    "symbol_error",
    "port_rcv_errors",
    "port_rcv_remote_physical_errors",
    "port_rcv_switch_relay_errors",
    "link_error_recovery",
    "link_downed",
    "port_xmit_discards",
    "port_xmit_constraint_errors",
    "port_rcv_constraint_errors",
    "local_link_integrity_errors",
    "excessive_buffer_overrun_errors",
    "VL15_dropped",
)
HW_ERROR_COUNTERS = (
    "out_of_buffer",
    "out_of_sequence",
    "packet_seq_err",
    "local_ack_timeout_err",
    "rnr_nak_retry_err",
    "implied_nak_seq_err",
    "req_cqe_error",
    "resp_cqe_error",
)
DATA_WORD_BYTES = 4


def parse_state(raw: bytes) -> str:
    """``4: ACTIVE`` -> ``ACTIVE``."""
    return raw.decode().split(":", 1)[-1].strip()


def parse_rate_gbps(raw: bytes) -> float | None:
    """``100 Gb/sec (4X EDR)`` -> 100.0."""
    match = re.match(rb"\s*([0-9.]+)\s*Gb/sec", raw)
    return float(match.group(1)) if match else None


ABSENT_RECHECK = 60
"""Reads between two looks for /sys/class/infiniband while it is absent."""


class IbSource:
    """``ib``: port state, data rates and error counters per InfiniBand/RoCE port."""

    name = "ib"
    optional = False

    def __init__(self, roots: Roots) -> None:
        self._root = roots.sys / "class/infiniband"
        self._counters = Counters()
        self._interval = Interval()
        self._absent_reads = 0
        """Reads since /sys/class/infiniband was last found absent (no RDMA driver loaded)."""

    def ports(self) -> list[tuple[str, int, str]]:
        """(device, port number, port directory)."""
        out: list[tuple[str, int, str]] = []
        try:
            devices = sorted(os.listdir(self._root))
        except OSError:
            return []
        for dev in devices:
            try:
                ports = sorted(os.listdir(self._root / dev / "ports"), key=int)
            except (OSError, ValueError):
                continue
            out.extend((dev, int(p), f"{self._root}/{dev}/ports/{p}") for p in ports)
        return out

    def capability(self) -> SourceCapability:
        if not self._root.is_dir():
            return capability(self.name, "off", f"{self._root} absent: no RDMA devices")
        ports = self.ports()
        if not ports:
            return capability(self.name, "off", f"{self._root} has no ports")
        return capability(self.name, "kernel", f"{len(ports)} port(s) under {self._root}")

    def inventory(self) -> list[IbPortInfo]:
        out = []
        for dev, port, d in self.ports():
            state = read_optional(f"{d}/state")
            rate = read_optional(f"{d}/rate")
            out.append(
                IbPortInfo(
                    device=dev,
                    port=port,
                    state=parse_state(state) if state else "",
                    rate_gbps=parse_rate_gbps(rate) if rate else None,
                )
            )
        return out

    def read(self, now_ns: int) -> SourceOutput:
        seconds = self._interval.advance(now_ns)
        out: list[SampleRow] = []
        if self._absent_reads:
            # Without an RDMA driver the directory does not exist; a failed lookup every
            # interval cost 0.07 ms of the fast sample here, so it is looked for again every
            # ABSENT_RECHECK reads (a driver loaded later shows up within that many).
            self._absent_reads = (self._absent_reads + 1) % ABSENT_RECHECK
            return SourceOutput()
        ports = self.ports()
        if not ports and not os.path.isdir(self._root):
            self._absent_reads = 1
        for dev, port, d in ports:
            entity = f"ib/{dev}/{port}"
            state = read_optional(f"{d}/state")
            if state is not None:
                out.append(
                    row(
                        now_ns, "ib_port_up", entity, 1.0 if parse_state(state) == "ACTIVE" else 0.0
                    )
                )
            for direction, name in (("receive", "port_rcv_data"), ("transmit", "port_xmit_data")):
                raw = read_optional(f"{d}/counters/{name}")
                if raw is None:
                    continue
                delta = self._counters.delta((entity, name), int(raw) * DATA_WORD_BYTES)
                if delta is not None and seconds:
                    out.append(
                        row(
                            now_ns,
                            "ib_port_bytes_per_second",
                            entity,
                            delta / seconds,
                            {"direction": direction},
                        )
                    )
            for folder, names in (("counters", ERROR_COUNTERS), ("hw_counters", HW_ERROR_COUNTERS)):
                for name in names:
                    raw = read_optional(f"{d}/{folder}/{name}")
                    if raw is not None:
                        out.append(
                            row(now_ns, "ib_port_errors_total", entity, int(raw), {"counter": name})
                        )
        return SourceOutput(rows=out)

    def close(self) -> None:
        pass
