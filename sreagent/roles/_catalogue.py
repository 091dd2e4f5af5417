"""The hypothesis catalogue: every fault class the analyzer can name, and what to check next.

Fault class names are the scenario library's ground-truth classes (sreagent.scenarios), so a
verdict can be scored without a mapping table. Each class says which entity kind it is
localised to, a title template, and the read-only diagnostics an on-call engineer would run
next to confirm or refute it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaultClass:
    name: str
    entity_kind: str
    title: str
    """``{entity}`` is replaced by the localised entity."""
    next_diagnostics: tuple[str, ...]
    keywords: tuple[str, ...]
    """Words the runbook retriever adds to the query for this class."""


def _f(name: str, kind: str, title: str, diag: tuple[str, ...], kw: tuple[str, ...]) -> FaultClass:
    return FaultClass(name, kind, title, diag, kw)


CATALOGUE: tuple[FaultClass, ...] = (
    _f("cpu_saturation", "process", "CPU saturated by a runaway process ({entity})",
       ("top -b -n1 -o %CPU | head -20", "pidstat -u -p <pid> 1 5",
        "cat /proc/pressure/cpu", "perf top -p <pid> (read-only profile)"),
       ("cpu", "saturation", "runaway", "process", "run", "queue")),
    _f("cgroup_cpu_throttling", "cgroup", "CFS quota throttling in {entity}",
       ("cat /sys/fs/cgroup/<path>/cpu.stat (nr_throttled, throttled_usec)",
        "compare the quota (cpu.max or cpu.cfs_quota_us) with the cgroup's demand",
        "kubectl describe pod: CPU limits of the containers"),
       ("cgroup", "cpu", "throttling", "quota", "cfs", "limit")),
    _f("memory_leak_oom", "process", "Memory leak in {entity} ending in the OOM killer",
       ("grep -i 'out of memory' via journalctl -k", "ps -o pid,rss,cmd --sort=-rss | head",
        "cat /proc/<pid>/smaps_rollup", "check the process's memory growth since start"),
       ("memory", "leak", "oom", "killer", "rss")),
    _f("swap_thrash", "host", "Swap thrashing on {entity}",
       ("vmstat 1 5 (si/so columns)", "cat /proc/pressure/memory",
        "ps -o pid,maj_flt,rss,cmd --sort=-maj_flt | head"),
       ("swap", "thrash", "page", "faults", "memory", "pressure")),
    _f("disk_io_saturation", "disk", "IO saturation and latency on {entity}",
       ("iostat -x 1 5", "cat /proc/pressure/io", "iotop -o -b -n 3",
        "check the device's queue depth and scheduler"),
       ("disk", "io", "latency", "await", "saturation", "queue")),
    _f("filesystem_full", "filesystem", "Filesystem {entity} running out of space",
       ("df -h <mount>", "du -xh --max-depth=2 <mount> | sort -h | tail",
        "lsof +L1 (deleted files still held open)"),
       ("filesystem", "full", "disk", "space", "df")),
    _f("inode_exhaustion", "filesystem", "Inode exhaustion on {entity}",
       ("df -i <mount>", "find <mount> -xdev -type d -size +1M (directories with many files)"),
       ("inode", "exhaustion", "filesystem", "files")),
    _f("fd_exhaustion", "process", "File descriptor exhaustion in {entity}",
       ("ls /proc/<pid>/fd | wc -l", "cat /proc/<pid>/limits | grep 'open files'",
        "lsof -p <pid> | awk '{print $5}' | sort | uniq -c"),
       ("file", "descriptor", "fd", "exhaustion", "ulimit", "nofile")),
    _f("packet_loss", "nic", "Packet loss and TCP retransmits on {entity}",
       ("ip -s link show <nic>", "nstat -az TcpRetransSegs", "ss -ti (per-connection retrans)",
        "ethtool -S <nic> (drops, errors)"),
       ("packet", "loss", "retransmit", "tcp", "drops", "network")),
    _f("nic_link_flap", "nic", "Link flapping on {entity}",
       ("ip -s link show <nic> (carrier_changes)", "journalctl -k | grep -i 'link is'",
        "ethtool <nic> (speed, duplex, link detected)", "check cable, optics and switch port"),
       ("link", "flap", "carrier", "nic", "down")),
    _f("listen_backlog_overflow", "host", "Listen backlog overflow on {entity}",
       ("ss -ltn (Recv-Q against Send-Q per listener)", "nstat -az TcpExtListenOverflows",
        "sysctl net.core.somaxconn net.ipv4.tcp_max_syn_backlog"),
       ("listen", "backlog", "overflow", "somaxconn", "accept", "queue")),
    _f("noisy_neighbour", "cgroup", "Noisy neighbour {entity} starving other workloads",
       ("per-cgroup io.stat / cpu.stat: who grew", "cat <victim cgroup>/io.pressure",
        "check the neighbour's limits (io.max, cpu.max)"),
       ("noisy", "neighbour", "cgroup", "contention", "isolation")),
    _f("gpu_thermal_throttle", "gpu", "Thermal throttling of {entity}",
       ("nvidia-smi -q -d TEMPERATURE,PERFORMANCE", "check fans, airflow and inlet temperature",
        "dcgmi diag -r 1"),
       ("gpu", "thermal", "temperature", "throttle", "clocks")),
    _f("gpu_power_throttle", "gpu", "Power-cap throttling of {entity}",
       ("nvidia-smi -q -d POWER,PERFORMANCE", "compare the enforced power limit with the default",
        "check the PSU and power capping policy"),
       ("gpu", "power", "cap", "throttle", "clocks")),
    _f("gpu_xid", "gpu", "GPU Xid errors on {entity}",
       ("journalctl -k | grep -i xid", "nvidia-smi -q", "look up the Xid code in the NVIDIA "
        "Xid catalogue"),
       ("gpu", "xid", "error", "driver")),
    _f("gpu_ecc_dbe", "gpu", "Uncorrectable ECC errors and row remapping on {entity}",
       ("nvidia-smi -q -d ECC,ROW_REMAPPER", "check pending row remaps (needs a GPU reset)"),
       ("gpu", "ecc", "double", "bit", "remap", "memory")),
    _f("nvlink_degradation", "gpu", "NVLink degradation on {entity}",
       ("nvidia-smi nvlink -s -i <gpu>", "nvidia-smi nvlink -e -i <gpu> (error counters)"),
       ("nvlink", "link", "errors", "gpu", "bandwidth")),
    _f("pcie_degradation", "gpu", "PCIe link degradation of {entity}",
       ("nvidia-smi -q -d PCIE (current vs max width and generation)",
        "lspci -vv -s <bus> (LnkSta)", "journalctl -k | grep -i aer"),
       ("pcie", "link", "width", "aer", "gpu")),
    _f("gpu_memory_exhaustion", "gpu", "GPU memory exhaustion on {entity}",
       ("nvidia-smi --query-compute-apps=pid,used_memory --format=csv",
        "check batch size and memory fragmentation of the job"),
       ("gpu", "memory", "oom", "exhaustion", "cuda")),
    _f("collective_straggler", "gpu", "Collective straggler: {entity} lags its peers",
       ("per-rank step times from the training job", "nvidia-smi dmon on the lagging GPU",
        "check the rank's input pipeline, host CPU and NIC"),
       ("nccl", "straggler", "collective", "rank", "training")),
    _f("rdma_link_errors", "link", "RDMA link errors on {entity}",
       ("ibstat", "perfquery (symbol errors, link downed)", "check cable and switch port"),
       ("rdma", "infiniband", "link", "errors", "ib")),
)

BY_NAME: dict[str, FaultClass] = {f.name: f for f in CATALOGUE}
