"""The one list of metric and event names that sreagent emits.

The collector, the scenario library and the analysis all import names from here, so what a
synthetic profile produces and what a live host produces cannot drift apart (a test compares
them). Names follow Prometheus conventions: snake_case, a unit suffix, ``_total`` for counters.

Entities name what was measured, always as ``<kind>`` or ``<kind>/<id>``:
``host``, ``cpu/<n>``, ``disk/<dev>``, ``fs/<mountpoint>``, ``nic/<ifname>``,
``cgroup/<path>``, ``process/<pid>``, ``gpu/<index>``, ``ib/<device>/<port>``,
``collector`` (the collector's own health), ``scrape/<target>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["gauge", "counter"]


@dataclass(frozen=True)
class MetricSpec:
    """What one metric name means."""

    name: str
    type: MetricType
    unit: str
    entity: str
    """The entity kind it is reported for (``host``, ``cpu``, ``disk``...)."""
    help: str
    labels: tuple[str, ...] = ()


def _m(name: str, type_: MetricType, unit: str, entity: str, help_: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, type_, unit, entity, help_, labels)


# One line per metric reads best as a table; keep the formatter away from it.
# fmt: off
METRICS: tuple[MetricSpec, ...] = (
    # CPU
    _m("cpu_utilisation_ratio", "gauge", "ratio", "host", "Share of CPU time not idle or iowait over the interval"),
    _m("cpu_mode_ratio", "gauge", "ratio", "host", "Share of CPU time per mode over the interval", "mode"),
    _m("cpu_core_utilisation_ratio", "gauge", "ratio", "cpu", "Per-CPU busy share over the interval"),
    _m("cpu_iowait_ratio", "gauge", "ratio", "host", "Share of CPU time waiting for IO"),
    _m("cpu_steal_ratio", "gauge", "ratio", "host", "Share of CPU time stolen by the hypervisor"),
    _m("load_average_1m", "gauge", "tasks", "host", "1-minute load average"),
    _m("procs_running", "gauge", "tasks", "host", "Runnable tasks (run queue length)"),
    _m("procs_blocked", "gauge", "tasks", "host", "Tasks blocked on IO"),
    _m("context_switches_per_second", "gauge", "1/s", "host", "Context switches per second"),
    _m("cpu_migrations_per_second", "gauge", "1/s", "host", "CPU migrations per second (perf)"),
    _m("page_faults_per_second", "gauge", "1/s", "host", "Page faults per second"),
    _m("major_page_faults_per_second", "gauge", "1/s", "host", "Major page faults per second"),
    # Memory
    _m("memory_total_bytes", "gauge", "bytes", "host", "Physical memory"),
    _m("memory_used_bytes", "gauge", "bytes", "host", "Used memory, without page cache and buffers"),
    _m("memory_available_bytes", "gauge", "bytes", "host", "MemAvailable"),
    _m("memory_used_ratio", "gauge", "ratio", "host", "Used share of physical memory"),
    _m("memory_cached_bytes", "gauge", "bytes", "host", "Page cache"),
    _m("swap_used_bytes", "gauge", "bytes", "host", "Swap in use"),
    _m("swap_in_pages_per_second", "gauge", "1/s", "host", "Pages swapped in per second"),
    _m("swap_out_pages_per_second", "gauge", "1/s", "host", "Pages swapped out per second"),
    _m("oom_kills_total", "counter", "kills", "host", "OOM kills since boot (vmstat oom_kill)"),
    # PSI
    _m("pressure_some_ratio", "gauge", "ratio", "host", "PSI 'some' avg10 as a ratio", "resource"),
    _m("pressure_full_ratio", "gauge", "ratio", "host", "PSI 'full' avg10 as a ratio", "resource"),
    _m("pressure_stall_seconds_total", "counter", "seconds", "host", "PSI total stall time", "resource", "kind"),
    # Disk
    _m("disk_reads_per_second", "gauge", "1/s", "disk", "Read IOPS"),
    _m("disk_writes_per_second", "gauge", "1/s", "disk", "Write IOPS"),
    _m("disk_read_bytes_per_second", "gauge", "bytes/s", "disk", "Read throughput"),
    _m("disk_write_bytes_per_second", "gauge", "bytes/s", "disk", "Write throughput"),
    _m("disk_await_seconds", "gauge", "seconds", "disk", "Average time per completed IO over the interval"),
    _m("disk_utilisation_ratio", "gauge", "ratio", "disk", "Share of the interval the device was busy"),
    _m("disk_in_flight", "gauge", "requests", "disk", "IOs in flight (queue depth)"),
    _m("disk_io_errors_total", "counter", "errors", "disk", "IO errors reported by the kernel"),
    _m("filesystem_used_ratio", "gauge", "ratio", "fs", "Used share of blocks (statvfs)"),
    _m("filesystem_free_bytes", "gauge", "bytes", "fs", "Bytes available to unprivileged users"),
    _m("filesystem_inodes_used_ratio", "gauge", "ratio", "fs", "Used share of inodes"),
    # Network
    _m("network_receive_bytes_per_second", "gauge", "bytes/s", "nic", "Received bytes per second"),
    _m("network_transmit_bytes_per_second", "gauge", "bytes/s", "nic", "Sent bytes per second"),
    _m("network_receive_packets_per_second", "gauge", "1/s", "nic", "Received packets per second"),
    _m("network_transmit_packets_per_second", "gauge", "1/s", "nic", "Sent packets per second"),
    _m("network_errors_per_second", "gauge", "1/s", "nic", "Receive plus transmit errors per second", "direction"),
    _m("network_drops_per_second", "gauge", "1/s", "nic", "Receive plus transmit drops per second", "direction"),
    _m("network_carrier_changes_total", "counter", "changes", "nic", "Carrier up/down transitions"),
    _m("network_link_up", "gauge", "bool", "nic", "1 when the link has carrier"),
    _m("tcp_retransmit_ratio", "gauge", "ratio", "host", "Retransmitted segments / sent segments"),
    _m("tcp_retransmits_per_second", "gauge", "1/s", "host", "Retransmitted segments per second"),
    _m("tcp_listen_overflows_per_second", "gauge", "1/s", "host", "Listen queue overflows per second"),
    _m("tcp_listen_drops_per_second", "gauge", "1/s", "host", "SYNs dropped at listen per second"),
    _m("tcp_established", "gauge", "sockets", "host", "Established TCP sockets"),
    _m("tcp_listen_backlog_ratio", "gauge", "ratio", "host", "Fullest listen queue: accept queue / backlog", "port"),
    _m("tcp_listen_queue_length", "gauge", "connections", "host", "Connections waiting in the fullest accept queue of a port", "port"),
    _m("tcp_sockets", "gauge", "sockets", "host", "TCP sockets per state", "state"),
    # File descriptors and processes
    _m("fds_allocated", "gauge", "fds", "host", "Allocated file handles (file-nr)"),
    _m("fds_used_ratio", "gauge", "ratio", "host", "Allocated / max file handles"),
    _m("process_fds_used_ratio", "gauge", "ratio", "process", "Open fds / RLIMIT_NOFILE of a process"),
    _m("process_cpu_ratio", "gauge", "cores", "process", "CPU cores a process used over the interval"),
    _m("process_rss_bytes", "gauge", "bytes", "process", "Resident set size of a process"),
    _m("process_pss_bytes", "gauge", "bytes", "process", "Proportional set size of a process (smaps_rollup)"),
    _m("processes_total", "gauge", "processes", "host", "Processes on the host"),
    # cgroups
    _m("cgroup_cpu_usage_ratio", "gauge", "cores", "cgroup", "CPU cores used by the cgroup"),
    _m("cgroup_cpu_throttled_ratio", "gauge", "ratio", "cgroup", "Throttled periods / periods over the interval"),
    _m("cgroup_cpu_throttled_seconds_per_second", "gauge", "ratio", "cgroup", "Throttled time per second"),
    _m("cgroup_cpu_limit_cores", "gauge", "cores", "cgroup", "CFS quota / period (absent when unlimited)"),
    _m("cgroup_memory_used_bytes", "gauge", "bytes", "cgroup", "Memory charged to the cgroup"),
    _m("cgroup_memory_limit_bytes", "gauge", "bytes", "cgroup", "Memory limit (absent when unlimited)"),
    _m("cgroup_memory_used_ratio", "gauge", "ratio", "cgroup", "Used / limit"),
    _m("cgroup_memory_failcnt_total", "counter", "events", "cgroup", "Times the limit was hit"),
    _m("cgroup_oom_kills_total", "counter", "kills", "cgroup", "OOM kills inside the cgroup"),
    _m("cgroup_io_bytes_per_second", "gauge", "bytes/s", "cgroup", "IO bytes per second", "direction"),
    _m("cgroup_pressure_some_ratio", "gauge", "ratio", "cgroup", "Per-cgroup PSI 'some' avg10", "resource"),
    _m("cgroup_pressure_full_ratio", "gauge", "ratio", "cgroup", "Per-cgroup PSI 'full' avg10", "resource"),
    # GPU
    _m("gpu_utilisation_ratio", "gauge", "ratio", "gpu", "SM busy share"),
    _m("gpu_memory_used_bytes", "gauge", "bytes", "gpu", "Framebuffer memory used"),
    _m("gpu_memory_used_ratio", "gauge", "ratio", "gpu", "Framebuffer memory used / total"),
    _m("gpu_temperature_celsius", "gauge", "celsius", "gpu", "GPU core temperature"),
    _m("gpu_power_watts", "gauge", "watts", "gpu", "Power draw"),
    _m("gpu_power_limit_watts", "gauge", "watts", "gpu", "Enforced power limit"),
    _m("gpu_sm_clock_hertz", "gauge", "hertz", "gpu", "SM clock"),
    _m("gpu_memory_clock_hertz", "gauge", "hertz", "gpu", "Memory clock"),
    _m("gpu_bar1_used_bytes", "gauge", "bytes", "gpu", "BAR1 memory used"),
    _m("gpu_process_memory_bytes", "gauge", "bytes", "gpu", "GPU memory used by one process", "pid"),
    _m("gpu_retired_pages_total", "counter", "pages", "gpu", "Retired framebuffer pages", "cause"),
    _m("gpu_remapped_rows_pending", "gauge", "bool", "gpu", "1 when a row remap waits for a GPU reset"),
    _m("gpu_throttled", "gauge", "bool", "gpu", "1 when a clock throttle reason is active", "reason"),
    _m("gpu_ecc_errors_total", "counter", "errors", "gpu", "ECC error count", "type"),
    _m("gpu_remapped_rows_total", "counter", "rows", "gpu", "Remapped rows", "cause"),
    _m("gpu_pcie_link_width", "gauge", "lanes", "gpu", "Current PCIe link width"),
    _m("gpu_pcie_link_generation", "gauge", "generation", "gpu", "Current PCIe generation"),
    _m("gpu_pcie_bytes_per_second", "gauge", "bytes/s", "gpu", "PCIe throughput", "direction"),
    _m("gpu_nvlink_errors_total", "counter", "errors", "gpu", "NVLink error counters", "link", "type"),
    _m("gpu_nvlink_active_links", "gauge", "links", "gpu", "NVLink links up"),
    # RDMA / InfiniBand
    _m("ib_port_errors_total", "counter", "errors", "ib", "Port error counters", "counter"),
    _m("ib_port_bytes_per_second", "gauge", "bytes/s", "ib", "Port data rate", "direction"),
    _m("ib_port_up", "gauge", "bool", "ib", "1 when the port is ACTIVE"),
    # eBPF (tracepoints): distributions and rates the kernel counters do not give
    _m("disk_request_latency_seconds", "gauge", "seconds", "disk", "Block request latency quantile over the interval, from a log2 histogram (eBPF)", "quantile"),
    _m("runqueue_latency_seconds", "gauge", "seconds", "host", "Time woken tasks waited for a CPU, quantile over the interval (eBPF)", "quantile"),
    _m("packet_drops_per_second", "gauge", "1/s", "host", "Packets the kernel dropped per second, by drop reason (eBPF skb:kfree_skb)", "reason"),
    _m("process_execs_per_second", "gauge", "1/s", "host", "Programs executed per second (eBPF)"),
    _m("process_exits_per_second", "gauge", "1/s", "host", "Processes exited per second (eBPF)"),
    # Collector self-metrics
    _m("collector_cpu_seconds_per_second", "gauge", "cores", "collector", "Collector CPU use"),
    _m("collector_rss_bytes", "gauge", "bytes", "collector", "Collector resident memory"),
    _m("collector_spool_bytes", "gauge", "bytes", "collector", "Bytes held in the spool"),
    _m("collector_spool_dropped_total", "counter", "batches", "collector", "Batches dropped because the spool was full"),
    _m("collector_spool_corrupt_total", "counter", "records", "collector", "Corrupt spool records skipped"),
    _m("collector_mode", "gauge", "level", "collector", "0 normal, 1 pressure, 2 critical"),
    _m("collector_kmsg_lost_records_total", "counter", "records", "collector", "Kernel log records overwritten before the collector read them"),
    _m("collector_ebpf_lost_events_total", "counter", "events", "collector", "eBPF events lost before the collector read them (buffer overruns, per-interval caps)"),
    _m("collector_sample_duration_seconds", "gauge", "seconds", "collector", "CPU time of the last sample"),
    _m("collector_spool_records", "gauge", "records", "collector", "Unsent batches held in the spool"),
    _m("collector_interval_seconds", "gauge", "seconds", "collector", "Current sampling interval (stretched by self-protection)"),
    _m("collector_sources_shed", "gauge", "sources", "collector", "Optional sources shed by self-protection"),
    _m("collector_batches_delivered_total", "counter", "batches", "collector", "Batches the controller acknowledged (accepted or duplicate)"),
    _m("collector_transport_errors_total", "counter", "errors", "collector", "Failed delivery attempts (connection, timeout, 5xx, 401/403, 429)"),
    _m("collector_ack_mismatches_total", "counter", "acks", "collector", "Acknowledgements that did not echo the batch's key"),
    _m("collector_dead_letters_total", "counter", "batches", "collector", "Batches refused by the controller and written to the dead-letter file"),
    _m("collector_source_errors_total", "counter", "errors", "collector", "Reads of a source that raised", "source"),
    # Scrape targets (the scraped series keep their own names, entity scrape/<target>)
    _m("scrape_up", "gauge", "bool", "scrape", "1 when the last scrape of a target succeeded"),
    _m("scrape_duration_seconds", "gauge", "seconds", "scrape", "Wall time of the last scrape"),
)

# fmt: on

METRICS_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in METRICS}

EVENT_KINDS: dict[str, str] = {
    "oom_kill": "The kernel OOM killer killed a process",
    "hung_task": "A task was blocked for more than hung_task_timeout_secs",
    "gpu_xid": "An NVIDIA Xid error (attribute ``xid`` holds the code)",
    "gpu_ecc_dbe": "A GPU double-bit ECC error",
    "pcie_aer": "A PCIe Advanced Error Reporting message",
    "nvlink_error": "An NVLink error",
    "link_down": "A network link lost carrier",
    "link_up": "A network link regained carrier",
    "io_error": "A block device reported an IO error",
    "fs_readonly": "A filesystem was remounted read-only",
    "kernel_oops": "The kernel reported a bug: an oops, BUG, panic, soft/hard lockup or RCU stall",
    "fs_error": "A filesystem reported an error or warning, or shut itself down",
    "memory_error": "A memory (EDAC/MCE) hardware error, corrected or not",
    "netdev_unregister_hung": "unregister_netdevice waits for a device that is still referenced",
    "process_exec": "A process executed a program (eBPF)",
    "process_exit": "A process exited (eBPF)",
    "tcp_retransmit": "TCP retransmits on a connection over the interval (eBPF)",
    "tcp_state_change": "TCP state transitions over the interval (eBPF)",
    "packet_drop": "Packets dropped by the kernel, by reason (eBPF)",
    "process_restart": "A process of the same command started again after exiting",
    "alert": "An alert received from Alertmanager",
}


def entity(kind: str, ident: str | int | None = None) -> str:
    """Build an entity string: ``entity("disk", "sda") == "disk/sda"``."""
    return kind if ident is None else f"{kind}/{ident}"


def entity_kind(entity_name: str) -> str:
    """The kind part of an entity string: ``entity_kind("cgroup/a/b") == "cgroup"``."""
    return entity_name.split("/", 1)[0]
