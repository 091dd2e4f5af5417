"""Hardware inventory on a slow interval: CPU and its topology, memory, disks, NICs, GPUs, IB ports.

Disk kind decides hardware-aware thresholds downstream (an NVMe and an HDD saturate at very
different latencies), so it is derived from what the kernel says, in this order:
``nvme*`` names are NVMe; paravirtual drivers (virtio, Xen, Hyper-V) and virtual SCSI vendors
are ``virtual``; devices without a ``device`` link (zram, device-mapper, md) are ``virtual``;
otherwise ``queue/rotational`` tells HDD from SSD.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sreagent.collector._common import capability, read_int, read_optional, read_text
from sreagent.collector._disk import SECTOR_BYTES, SKIPPED_PREFIXES
from sreagent.collector._memory import parse_meminfo
from sreagent.collector._perf import parse_cpu_list
from sreagent.collector._source import Roots, SourceOutput
from sreagent.collector._topology import read_topology
from sreagent.telemetry import DiskInfo, GpuInfo, IbPortInfo, Inventory, NicInfo, SourceCapability
from sreagent.telemetry.batch import DiskKind

VIRTUAL_DRIVERS = frozenset(
    {"virtio_blk", "virtio_scsi", "xen_blkfront", "hv_storvsc", "vmw_pvscsi"}
)
VIRTUAL_VENDORS = frozenset({"QEMU", "VMware", "Msft", "Google", "VBOX"})


def parse_cpu_model(raw: bytes) -> str:
    """The CPU model from /proc/cpuinfo (``model name`` on x86, ``Model``/``CPU part`` on Arm)."""
    fallback = ""
    for line in raw.splitlines():
        key, _, value = line.partition(b":")
        key = key.strip()
        if key == b"model name":
            return value.strip().decode("utf-8", "replace")[:256]
        if key in (b"Model", b"cpu model", b"CPU part") and not fallback:
            fallback = value.strip().decode("utf-8", "replace")[:256]
    return fallback


def disk_kind(
    name: str, driver: str, rotational: int | None, vendor: str, has_device: bool
) -> DiskKind:
    if name.startswith("nvme"):
        return "nvme"
    if driver in VIRTUAL_DRIVERS or vendor in VIRTUAL_VENDORS or not has_device:
        return "virtual"
    if rotational is None:
        return "unknown"
    return "hdd" if rotational == 1 else "ssd"


def _link_name(path: str) -> str:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return ""


class InventorySource:
    """``inventory``: the host's hardware, refreshed on a slow interval."""

    name = "inventory"
    optional = False

    def __init__(
        self,
        roots: Roots,
        *,
        gpus: Callable[[], list[GpuInfo]] | None = None,
        ib_ports: Callable[[], list[IbPortInfo]] | None = None,
    ) -> None:
        self._roots = roots
        self._gpus = gpus
        self._ib_ports = ib_ports

    def capability(self) -> SourceCapability:
        return capability(
            self.name,
            "kernel",
            f"{self._roots.proc}/cpuinfo, {self._roots.sys}/block, /class/net, "
            "/devices/system/{cpu,node}",
        )

    def inventory(self) -> Inventory:
        roots = self._roots
        cpuinfo = read_optional(roots.proc / "cpuinfo") or b""
        online = read_optional(roots.sys / "devices/system/cpu/online")
        cpu_count = (
            len(parse_cpu_list(online))
            if online
            else sum(1 for line in cpuinfo.splitlines() if line.startswith(b"processor"))
        )
        meminfo = read_optional(roots.proc / "meminfo")
        memory = parse_meminfo(meminfo).get("MemTotal", 0) if meminfo else 0
        topology = read_topology(roots.sys)
        return Inventory(
            cpu_model=parse_cpu_model(cpuinfo),
            cpu_count=cpu_count,
            memory_bytes=memory,
            disks=self.disks(),
            nics=self.nics(),
            gpus=self._gpus() if self._gpus else [],
            ib_ports=self._ib_ports() if self._ib_ports else [],
            cpu_sockets=topology.sockets if topology is not None else None,
            cpu_cores=topology.cores if topology is not None else None,
            numa_nodes=topology.numa_nodes if topology is not None else None,
        )

    def disks(self) -> list[DiskInfo]:
        block = self._roots.sys / "block"
        try:
            names = sorted(os.listdir(block))
        except OSError:
            return []
        out = []
        for name in names:
            if name.startswith(SKIPPED_PREFIXES):
                continue
            base = f"{block}/{name}"
            has_device = os.path.lexists(f"{base}/device")
            driver = _link_name(f"{base}/device/driver")
            if not driver and name.startswith("nvme"):
                driver = "nvme"
            rotational = read_int(f"{base}/queue/rotational")
            vendor = read_text(f"{base}/device/vendor") or ""
            out.append(
                DiskInfo(
                    name=name,
                    kind=disk_kind(name, driver, rotational, vendor, has_device),
                    size_bytes=(read_int(f"{base}/size") or 0) * SECTOR_BYTES,
                    rotational=rotational == 1,
                    driver=driver[:64],
                )
            )
        return out

    def nics(self) -> list[NicInfo]:
        net = self._roots.sys / "class/net"
        try:
            names = sorted(os.listdir(net))
        except OSError:
            return []
        out = []
        for name in names:
            if name == "lo":
                continue
            base = f"{net}/{name}"
            # speed is -1 or EINVAL for links that are down or virtual.
            speed = read_int(f"{base}/speed")
            out.append(
                NicInfo(
                    name=name,
                    speed_mbps=speed if speed is not None and speed > 0 else None,
                    driver=_link_name(f"{base}/device/driver")[:64],
                    mtu=read_int(f"{base}/mtu") or 0,
                )
            )
        return out

    def read(self, now_ns: int) -> SourceOutput:
        return SourceOutput(inventory=self.inventory())

    def close(self) -> None:
        pass
