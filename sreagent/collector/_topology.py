"""CPU topology for the hardware inventory: sockets, physical cores, hardware threads, NUMA nodes.

From sysfs (Documentation/ABI/stable/sysfs-devices-system-cpu, Documentation/admin-guide/
cputopology.rst): for every online CPU, ``topology/core_siblings_list`` names the CPUs of its
package (socket) and ``topology/thread_siblings_list`` the hardware threads of its core. The
distinct sibling lists are the sockets and the cores; counting distinct lists instead of ids
stays right where ``core_id`` repeats across dies or ``physical_package_id`` is -1 (some Arm
firmware). NUMA nodes come from ``/sys/devices/system/node/online``; a kernel built without
NUMA has no such directory, and the node count is then unknown rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sreagent.collector._common import read_optional
from sreagent.collector._perf import parse_cpu_list


@dataclass(frozen=True)
class CpuTopology:
    """What the inventory reports as ``cpu_sockets``, ``cpu_cores`` and ``numa_nodes``."""

    sockets: int | None
    """None (like ``cores``) when no online CPU has topology files (an old or stripped-down
    sysfs): unknown, not guessed."""
    cores: int | None
    """Physical cores with an online CPU."""
    threads: int
    """Online hardware threads (logical CPUs)."""
    numa_nodes: int | None
    """None when the kernel has no NUMA support (no node directory)."""


def parse_topology(
    online: bytes,
    siblings: Mapping[int, tuple[bytes | None, bytes | None]],
    numa_online: bytes | None,
) -> CpuTopology:
    """The topology from the raw sysfs contents.

    ``online`` is ``cpu/online``; ``siblings`` maps each online CPU to its
    ``(core_siblings_list, thread_siblings_list)``, None where a file is missing (a CPU
    without topology information, among others that have it, counts as its own core and
    package; with none at all, sockets and cores are unknown); ``numa_online`` is
    ``node/online`` or None when the kernel has no NUMA directory.
    """
    cpus = parse_cpu_list(online)
    packages: set[tuple[int, ...]] = set()
    cores: set[tuple[int, ...]] = set()
    known = any(any(files) for cpu, files in siblings.items() if cpu in cpus)
    for cpu in cpus:
        package_list, thread_list = siblings.get(cpu, (None, None))
        packages.add(_members(package_list, cpu))
        cores.add(_members(thread_list, cpu))
    return CpuTopology(
        sockets=len(packages) if known else None,
        cores=len(cores) if known else None,
        threads=len(cpus),
        numa_nodes=len(parse_cpu_list(numa_online)) if numa_online is not None else None,
    )


def _members(raw: bytes | None, cpu: int) -> tuple[int, ...]:
    if not raw or not raw.strip():
        return (cpu,)
    return tuple(sorted(parse_cpu_list(raw)))


def read_topology(sys_root: Path) -> CpuTopology | None:
    """The topology of the host whose sysfs is mounted at ``sys_root``; None without
    ``devices/system/cpu/online`` (not a Linux sysfs)."""
    cpu_dir = sys_root / "devices/system/cpu"
    online = read_optional(cpu_dir / "online")
    if online is None:
        return None
    siblings = {
        cpu: (
            read_optional(cpu_dir / f"cpu{cpu}/topology/core_siblings_list"),
            read_optional(cpu_dir / f"cpu{cpu}/topology/thread_siblings_list"),
        )
        for cpu in parse_cpu_list(online)
    }
    numa = read_optional(sys_root / "devices/system/node/online")
    return parse_topology(online, siblings, numa)
