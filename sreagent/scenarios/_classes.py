"""The closed set of fault classes and remediation families, defined once.

The role chain ranks hypotheses with exactly these class names, and scores itself against a
scenario's ground truth with them, so they live here and nowhere else. Each class carries its
catalogue entry: the entity kind its root cause is localised to, the remediation family that
fixes it, the metrics an analyst must cite, and every metric the fault may move (the
propagation set the scenario tests check: outside it, nothing may move).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sreagent.telemetry.names import METRICS


class FaultClass(StrEnum):
    """Every fault the scenario library can inject (and the role chain must name)."""

    CPU_SATURATION = "cpu_saturation"
    """A runaway process takes every core: run queue and CPU pressure climb."""
    CGROUP_CPU_THROTTLING = "cgroup_cpu_throttling"
    """A cgroup hits its CFS quota while the host still has idle CPU."""
    MEMORY_LEAK_OOM = "memory_leak_oom"
    """A process leaks until the kernel OOM killer kills it (kmsg ``oom_kill`` event)."""
    SWAP_THRASH = "swap_thrash"
    """The working set exceeds RAM: swap-in/out, major faults, memory pressure (a host
    condition; ``params.process`` names the process whose growth drives it)."""
    DISK_IO_SATURATION = "disk_io_saturation"
    """A device is saturated: utilisation near 1, await and IO pressure up."""
    FILESYSTEM_FULL = "filesystem_full"
    """A filesystem runs out of blocks."""
    INODE_EXHAUSTION = "inode_exhaustion"
    """A filesystem runs out of inodes while blocks remain."""
    FD_EXHAUSTION = "fd_exhaustion"
    """A process leaks file descriptors up to its RLIMIT_NOFILE."""
    PACKET_LOSS = "packet_loss"
    """Packets are lost on a path: TCP retransmits rise, NIC drops/errors."""
    NIC_LINK_FLAP = "nic_link_flap"
    """A NIC's carrier goes down and up repeatedly."""
    LISTEN_BACKLOG_OVERFLOW = "listen_backlog_overflow"
    """A listener's accept queue fills; SYNs and connections are dropped (reported on
    ``host`` with a ``port`` label, which is where the kernel counts it; ``params.port``)."""
    NOISY_NEIGHBOUR = "noisy_neighbour"
    """Another tenant's cgroup takes a shared resource (disk IO or CPU) from its neighbours."""
    GPU_THERMAL_THROTTLE = "gpu_thermal_throttle"
    """A GPU overheats and slows its clocks."""
    GPU_POWER_THROTTLE = "gpu_power_throttle"
    """A GPU is held at its power limit (lowered cap or power brake) and slows its clocks."""
    GPU_XID = "gpu_xid"
    """An NVIDIA Xid error (the code class is in the event's ``xid_class`` attribute)."""
    GPU_ECC_DBE = "gpu_ecc_dbe"
    """Double-bit (uncorrectable) ECC errors and row remapping on a GPU."""
    NVLINK_DEGRADATION = "nvlink_degradation"
    """NVLink errors and lost links on a GPU."""
    PCIE_DEGRADATION = "pcie_degradation"
    """A GPU's PCIe link trains down (width or generation) with AER errors."""
    GPU_MEMORY_EXHAUSTION = "gpu_memory_exhaustion"
    """A GPU's framebuffer fills until the job fails to allocate."""
    COLLECTIVE_STRAGGLER = "collective_straggler"
    """One rank's GPU goes idle while the other ranks wait in the collective."""
    RDMA_LINK_ERRORS = "rdma_link_errors"
    """An InfiniBand/RoCE port accumulates link errors and loses throughput."""


class RemediationFamily(StrEnum):
    """What kind of action fixes a fault (the planner's catalogue groups actions by these)."""

    KILL_RUNAWAY_PROCESS = "kill_runaway_process"
    RAISE_CGROUP_CPU_LIMIT = "raise_cgroup_cpu_limit"
    RESTART_LEAKING_PROCESS = "restart_leaking_process"
    REDUCE_MEMORY_PRESSURE = "reduce_memory_pressure"
    REDUCE_IO_LOAD = "reduce_io_load"
    FREE_DISK_SPACE = "free_disk_space"
    FREE_INODES = "free_inodes"
    RESTART_FD_LEAKING_PROCESS = "restart_fd_leaking_process"
    REROUTE_OR_REPAIR_NETWORK_PATH = "reroute_or_repair_network_path"
    REPLACE_LINK_HARDWARE = "replace_link_hardware"
    RAISE_LISTEN_BACKLOG = "raise_listen_backlog"
    ISOLATE_NOISY_NEIGHBOUR = "isolate_noisy_neighbour"
    FIX_GPU_COOLING = "fix_gpu_cooling"
    RESTORE_GPU_POWER_LIMIT = "restore_gpu_power_limit"
    RESET_OR_DRAIN_GPU = "reset_or_drain_gpu"
    DRAIN_AND_REPLACE_GPU = "drain_and_replace_gpu"
    DRAIN_NODE_FOR_REPAIR = "drain_node_for_repair"
    REDUCE_GPU_MEMORY_USE = "reduce_gpu_memory_use"
    RESTART_STRAGGLER_RANK = "restart_straggler_rank"
    RESET_RDMA_LINK = "reset_rdma_link"


@dataclass(frozen=True)
class CatalogueEntry:
    """What one fault class looks like, and what fixes it."""

    fault_class: FaultClass
    entity_kind: str
    """Entity kind of the root cause (``process``, ``cgroup``, ``disk``, ``gpu``...)."""
    remediation: RemediationFamily
    cited: tuple[str, ...]
    """Metrics an analysis of this fault must cite (a scenario may narrow or extend them)."""
    moves: frozenset[str]
    """Every metric this fault may move; the scenario tests check nothing else moves."""
    events: tuple[str, ...] = ()
    """Event kinds the fault emits."""


_CPU_MOVES = {
    "cpu_utilisation_ratio", "cpu_mode_ratio", "cpu_core_utilisation_ratio", "load_average_1m",
    "procs_running", "context_switches_per_second", "cpu_migrations_per_second",
    "pressure_some_ratio", "pressure_stall_seconds_total", "process_cpu_ratio",
    "cgroup_cpu_usage_ratio", "cgroup_pressure_some_ratio", "page_faults_per_second",
    "runqueue_latency_seconds", "process_execs_per_second", "process_exits_per_second",
}
_MEM_MOVES = {
    "memory_used_bytes", "memory_available_bytes", "memory_used_ratio", "memory_cached_bytes",
    "process_rss_bytes", "cgroup_memory_used_bytes", "cgroup_memory_used_ratio",
    "page_faults_per_second",
}
_IO_MOVES = {
    "disk_reads_per_second", "disk_writes_per_second", "disk_read_bytes_per_second",
    "disk_write_bytes_per_second", "disk_await_seconds", "disk_utilisation_ratio",
    "disk_in_flight", "pressure_some_ratio", "pressure_full_ratio",
    "pressure_stall_seconds_total", "procs_blocked", "cpu_iowait_ratio", "cpu_mode_ratio",
    "cgroup_io_bytes_per_second", "cgroup_pressure_some_ratio", "load_average_1m",
    "disk_request_latency_seconds", "runqueue_latency_seconds",
    "cpu_utilisation_ratio", "cpu_core_utilisation_ratio",
}
_NET_MOVES = {
    "packet_drops_per_second", "network_drops_per_second", "tcp_sockets",
    "network_receive_bytes_per_second", "network_transmit_bytes_per_second",
    "network_receive_packets_per_second", "network_transmit_packets_per_second",
}
_GPU_PERF_MOVES = {
    "gpu_utilisation_ratio", "gpu_throttled", "gpu_power_watts", "gpu_sm_clock_hertz", "gpu_temperature_celsius",
    "gpu_pcie_bytes_per_second", "ib_port_bytes_per_second",
}
_GPU_JOB_MOVES = _GPU_PERF_MOVES | {
    "gpu_memory_used_bytes", "gpu_memory_used_ratio", "process_cpu_ratio", "process_rss_bytes",
    "cpu_utilisation_ratio", "cpu_mode_ratio", "cpu_core_utilisation_ratio", "procs_running",
    "load_average_1m", "context_switches_per_second", "processes_total",
    "memory_used_bytes", "memory_available_bytes", "memory_used_ratio", "pressure_some_ratio",
    "pressure_stall_seconds_total", "fds_allocated", "fds_used_ratio", "process_fds_used_ratio",
    "cgroup_cpu_usage_ratio", "cgroup_memory_used_bytes", "cgroup_memory_used_ratio",
    # a job that stops also stops reading its training data
    "disk_reads_per_second", "disk_read_bytes_per_second", "disk_writes_per_second",
    "disk_write_bytes_per_second", "disk_utilisation_ratio", "disk_in_flight",
    "cgroup_io_bytes_per_second", "gpu_process_memory_bytes", "gpu_bar1_used_bytes",
    "gpu_memory_clock_hertz", "process_exits_per_second", "process_pss_bytes",
}


# Metrics that always move together: a 'some' stall comes with its 'full' share, PSS with RSS,
# a queue's length with its fill ratio, a per-state socket count with the established count.
_COMPANIONS = {
    "cgroup_pressure_some_ratio": ("cgroup_pressure_full_ratio",),
    "pressure_some_ratio": ("pressure_full_ratio",),
    "process_rss_bytes": ("process_pss_bytes", "page_faults_per_second"),
    "tcp_listen_backlog_ratio": ("tcp_listen_queue_length", "tcp_sockets"),
    "tcp_established": ("tcp_sockets",),
    "disk_await_seconds": ("disk_request_latency_seconds",),
    "processes_total": ("process_exits_per_second",),
}


def _entry(
    fault_class: FaultClass,
    entity_kind: str,
    remediation: RemediationFamily,
    cited: tuple[str, ...],
    moves: set[str],
    events: tuple[str, ...] = (),
) -> CatalogueEntry:
    moved = moves | set(cited)
    for metric in sorted(moved):
        moved |= set(_COMPANIONS.get(metric, ()))
    return CatalogueEntry(fault_class, entity_kind, remediation, cited, frozenset(moved), events)


F, R = FaultClass, RemediationFamily
CATALOGUE: dict[FaultClass, CatalogueEntry] = {
    e.fault_class: e
    for e in (
        _entry(F.CPU_SATURATION, "process", R.KILL_RUNAWAY_PROCESS,
               ("cpu_utilisation_ratio", "procs_running", "pressure_some_ratio",
                "process_cpu_ratio"),
               _CPU_MOVES),
        _entry(F.CGROUP_CPU_THROTTLING, "cgroup", R.RAISE_CGROUP_CPU_LIMIT,
               ("cgroup_cpu_throttled_ratio", "cgroup_cpu_usage_ratio",
                "cgroup_cpu_throttled_seconds_per_second"),
               _CPU_MOVES),
        _entry(F.MEMORY_LEAK_OOM, "process", R.RESTART_LEAKING_PROCESS,
               ("process_rss_bytes", "memory_used_ratio", "oom_kills_total"),
               _MEM_MOVES | {"cgroup_memory_failcnt_total", "cgroup_oom_kills_total",
                             "cgroup_pressure_some_ratio",
                             "pressure_some_ratio", "pressure_full_ratio",
                             "pressure_stall_seconds_total", "processes_total",
                             "process_exits_per_second"},
               ("oom_kill", "process_exit", "process_restart")),
        _entry(F.SWAP_THRASH, "host", R.REDUCE_MEMORY_PRESSURE,
               ("swap_in_pages_per_second", "swap_out_pages_per_second",
                "major_page_faults_per_second", "pressure_some_ratio"),
               _MEM_MOVES | _IO_MOVES | {"swap_used_bytes", "major_page_faults_per_second",
                                         "swap_in_pages_per_second", "swap_out_pages_per_second",
                                         "pressure_full_ratio"}),
        _entry(F.DISK_IO_SATURATION, "disk", R.REDUCE_IO_LOAD,
               ("disk_utilisation_ratio", "disk_await_seconds", "pressure_some_ratio"),
               _IO_MOVES),
        _entry(F.FILESYSTEM_FULL, "fs", R.FREE_DISK_SPACE,
               ("filesystem_used_ratio", "filesystem_free_bytes"),
               {"disk_writes_per_second", "disk_write_bytes_per_second", "disk_utilisation_ratio",
                "disk_await_seconds", "disk_in_flight", "process_cpu_ratio"}),
        _entry(F.INODE_EXHAUSTION, "fs", R.FREE_INODES,
               ("filesystem_inodes_used_ratio",),
               {"disk_writes_per_second", "disk_write_bytes_per_second", "disk_utilisation_ratio",
                "disk_await_seconds", "disk_in_flight", "process_cpu_ratio",
                "filesystem_used_ratio", "filesystem_free_bytes"}),
        _entry(F.FD_EXHAUSTION, "process", R.RESTART_FD_LEAKING_PROCESS,
               ("process_fds_used_ratio",),
               {"fds_allocated", "fds_used_ratio"}),
        _entry(F.PACKET_LOSS, "nic", R.REROUTE_OR_REPAIR_NETWORK_PATH,
               ("tcp_retransmit_ratio", "tcp_retransmits_per_second", "network_drops_per_second"),
               _NET_MOVES | {"network_errors_per_second"}),
        _entry(F.NIC_LINK_FLAP, "nic", R.REPLACE_LINK_HARDWARE,
               ("network_link_up", "network_carrier_changes_total"),
               _NET_MOVES | {"tcp_retransmit_ratio", "tcp_retransmits_per_second",
                             "tcp_established"},
               ("link_down", "link_up")),
        _entry(F.LISTEN_BACKLOG_OVERFLOW, "host", R.RAISE_LISTEN_BACKLOG,
               ("tcp_listen_backlog_ratio", "tcp_listen_overflows_per_second",
                "tcp_listen_drops_per_second"),
               {"tcp_established"}),
        _entry(F.NOISY_NEIGHBOUR, "cgroup", R.ISOLATE_NOISY_NEIGHBOUR,
               ("cgroup_io_bytes_per_second", "cgroup_pressure_some_ratio",
                "disk_utilisation_ratio"),
               _IO_MOVES | _CPU_MOVES | {"cgroup_cpu_throttled_ratio",
                                         "cgroup_cpu_throttled_seconds_per_second"}),
        _entry(F.GPU_THERMAL_THROTTLE, "gpu", R.FIX_GPU_COOLING,
               ("gpu_temperature_celsius", "gpu_throttled", "gpu_sm_clock_hertz"),
               _GPU_PERF_MOVES),
        _entry(F.GPU_POWER_THROTTLE, "gpu", R.RESTORE_GPU_POWER_LIMIT,
               ("gpu_power_limit_watts", "gpu_throttled", "gpu_sm_clock_hertz"),
               _GPU_PERF_MOVES),
        _entry(F.GPU_XID, "gpu", R.RESET_OR_DRAIN_GPU,
               ("gpu_utilisation_ratio",),
               # A GPU that falls off the bus stops reporting: every one of its series moves.
               _GPU_JOB_MOVES | {m.name for m in METRICS if m.entity == "gpu"}, ("gpu_xid", "process_exit")),
        _entry(F.GPU_ECC_DBE, "gpu", R.DRAIN_AND_REPLACE_GPU,
               ("gpu_ecc_errors_total", "gpu_remapped_rows_total"),
               _GPU_JOB_MOVES | {"gpu_remapped_rows_pending"},
               ("gpu_ecc_dbe", "gpu_xid", "process_exit")),
        _entry(F.NVLINK_DEGRADATION, "gpu", R.DRAIN_NODE_FOR_REPAIR,
               ("gpu_nvlink_errors_total", "gpu_nvlink_active_links"),
               _GPU_PERF_MOVES, ("nvlink_error", "gpu_xid")),
        _entry(F.PCIE_DEGRADATION, "gpu", R.DRAIN_NODE_FOR_REPAIR,
               ("gpu_pcie_link_width", "gpu_pcie_bytes_per_second"),
               _GPU_PERF_MOVES | {"gpu_pcie_link_generation"}, ("pcie_aer",)),
        _entry(F.GPU_MEMORY_EXHAUSTION, "gpu", R.REDUCE_GPU_MEMORY_USE,
               ("gpu_memory_used_ratio", "gpu_memory_used_bytes"),
               _GPU_JOB_MOVES, ("process_exit", "process_restart")),
        _entry(F.COLLECTIVE_STRAGGLER, "gpu", R.RESTART_STRAGGLER_RANK,
               ("gpu_utilisation_ratio", "gpu_power_watts"),
               _GPU_PERF_MOVES | {"process_cpu_ratio", "cpu_utilisation_ratio", "cpu_mode_ratio",
                                  "cpu_core_utilisation_ratio", "procs_running",
                                  "load_average_1m", "context_switches_per_second",
                                  "pressure_some_ratio", "pressure_stall_seconds_total",
                                  "cgroup_cpu_usage_ratio"}),
        _entry(F.RDMA_LINK_ERRORS, "ib", R.RESET_RDMA_LINK,
               ("ib_port_errors_total", "ib_port_bytes_per_second"),
               _GPU_PERF_MOVES | {"ib_port_up"}),
    )
}
"""One entry per :class:`FaultClass` (a test checks none is missing)."""
