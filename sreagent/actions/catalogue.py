"""The action catalogue: every action the planner may propose, with its safety class.

Safety classes, from harmless to irreversible:

* ``read_only``: collects evidence, changes nothing (``iostat``, ``nvidia-smi -q``).
* ``safe_reversible``: a small change with an exact rollback (``renice``, a runtime-only
  cgroup weight or quota, ``prlimit``).
* ``impacting``: changes service behaviour for users (restart, link bounce, power limit).
* ``destructive``: loses state or data (kill, GPU reset, log purge); never executed by
  sreagent, whatever the posture or approval.

Commands are argv templates (no shell). Placeholders are filled from the hypothesis's entity
and the telemetry, and every filled value must match a strict pattern first, so a hostile
entity name cannot become a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sreagent.errors import BadInput

SafetyClass = Literal["read_only", "safe_reversible", "impacting", "destructive"]
SAFETY_ORDER: tuple[SafetyClass, ...] = ("read_only", "safe_reversible", "impacting",
                                         "destructive")

PARAMETER_PATTERNS: dict[str, str] = {
    "pid": r"^[1-9][0-9]{0,9}$",
    "unit": r"^[A-Za-z0-9@_.:-]{1,200}\.(service|scope|slice)$",
    "dev": r"^[a-z][a-z0-9]{1,31}$",
    "mount": r"^/[A-Za-z0-9._/-]{0,200}$",
    "nic": r"^[A-Za-z0-9._-]{1,15}$",
    "gpu": r"^[0-9]{1,3}$",
    "ibdev": r"^[A-Za-z0-9_]{1,64}$",
    "port": r"^[0-9]{1,3}$",
    "percent": r"^[0-9]{1,5}$",
    "count": r"^[0-9]{1,9}$",
    "watts": r"^[0-9]{1,4}$",
}


@dataclass(frozen=True)
class ActionSpec:
    name: str
    safety_class: SafetyClass
    target_kind: str
    """Entity kind it acts on: ``process``, ``cgroup``, ``disk``, ``fs``, ``nic``, ``gpu``,
    ``ib``, ``host``."""
    argv: tuple[str, ...]
    rollback: str
    """How to undo it (a command template or a sentence); empty only for read-only actions."""
    expected_metric: str
    expected_direction: Literal["down", "up"]
    fault_classes: tuple[str, ...]
    description: str

    def command(self, parameters: dict[str, str]) -> list[str]:
        """The exact argv, after checking every parameter it uses."""
        for name in re.findall(r"{(\w+)}", " ".join(self.argv)):
            value = parameters.get(name)
            if value is None:
                raise BadInput(f"action {self.name} needs parameter {name!r}", field=name)
            pattern = PARAMETER_PATTERNS.get(name)
            if pattern is None or not re.match(pattern, value):
                raise BadInput(f"{value!r} is not a valid {name} for action {self.name}",
                               field=name)
        return [part.format(**parameters) for part in self.argv]

    def rollback_text(self, parameters: dict[str, str]) -> str:
        try:
            return self.rollback.format(**parameters)
        except (KeyError, IndexError):
            return self.rollback


def _a(name: str, cls: SafetyClass, kind: str, argv: tuple[str, ...], rollback: str,
       metric: str, direction: Literal["down", "up"], classes: tuple[str, ...],
       description: str) -> ActionSpec:
    return ActionSpec(name, cls, kind, argv, rollback, metric, direction, classes, description)


BUILTIN: tuple[ActionSpec, ...] = (
    # --- read-only diagnostics ---
    _a("inspect_process", "read_only", "process",
       ("ps", "-o", "pid,ppid,stat,ni,pcpu,rss,nlwp,etime,cmd", "-p", "{pid}"), "",
       "process_cpu_ratio", "down",
       ("cpu_saturation", "memory_leak_oom", "fd_exhaustion"),
       "Show the process's state, CPU, memory, threads and command line."),
    _a("inspect_cgroup_cpu", "read_only", "cgroup",
       ("systemctl", "show", "{unit}", "-p", "CPUQuotaPerSecUSec", "-p", "CPUUsageNSec",
        "-p", "CPUWeight"), "", "cgroup_cpu_throttled_ratio", "down",
       ("cgroup_cpu_throttling", "noisy_neighbour"),
       "Show the unit's CPU quota, weight and usage."),
    _a("inspect_disk", "read_only", "disk", ("iostat", "-x", "{dev}", "1", "3"), "",
       "disk_await_seconds", "down", ("disk_io_saturation",),
       "Extended IO statistics of the device over three seconds."),
    _a("inspect_filesystem", "read_only", "fs", ("df", "-h", "-i", "{mount}"), "",
       "filesystem_used_ratio", "down", ("filesystem_full", "inode_exhaustion"),
       "Space and inode use of the filesystem."),
    _a("inspect_memory", "read_only", "host", ("vmstat", "1", "5"), "",
       "swap_in_pages_per_second", "down", ("swap_thrash", "memory_leak_oom"),
       "Memory, swap and paging activity over five seconds."),
    _a("inspect_nic", "read_only", "nic", ("ip", "-s", "-s", "link", "show", "dev", "{nic}"), "",
       "network_drops_per_second", "down", ("packet_loss", "nic_link_flap"),
       "Link state, carrier changes, drops and errors of the interface."),
    _a("inspect_tcp", "read_only", "host", ("nstat", "-az"), "", "tcp_retransmit_ratio", "down",
       ("packet_loss", "listen_backlog_overflow"), "Kernel TCP counters (retransmits, "
       "listen overflows)."),
    _a("inspect_listeners", "read_only", "host", ("ss", "-ltn"), "",
       "tcp_listen_overflows_per_second", "down", ("listen_backlog_overflow",),
       "Listening sockets with their accept queue against the backlog."),
    _a("inspect_gpu", "read_only", "gpu",
       ("nvidia-smi", "-q", "-i", "{gpu}", "-d", "TEMPERATURE,POWER,PERFORMANCE,ECC,"
        "ROW_REMAPPER,MEMORY"), "", "gpu_temperature_celsius", "down",
       ("gpu_thermal_throttle", "gpu_power_throttle", "gpu_xid", "gpu_ecc_dbe",
        "gpu_memory_exhaustion", "collective_straggler", "nvlink_degradation",
        "pcie_degradation"), "The GPU's temperature, power, clocks, ECC and memory state."),
    _a("inspect_nvlink", "read_only", "gpu", ("nvidia-smi", "nvlink", "-s", "-i", "{gpu}"), "",
       "gpu_nvlink_errors_total", "down", ("nvlink_degradation",), "NVLink link status."),
    _a("inspect_ib_port", "read_only", "ib", ("ibstat", "{ibdev}", "{port}"), "",
       "ib_port_errors_total", "down", ("rdma_link_errors",), "InfiniBand port state."),
    # --- safe and reversible ---
    _a("renice_process", "safe_reversible", "process", ("renice", "-n", "10", "-p", "{pid}"),
       "renice -n 0 -p {pid}", "pressure_some_ratio", "down", ("cpu_saturation",),
       "Lower the runaway process's CPU priority so other work gets the CPU first."),
    _a("raise_cgroup_cpu_quota", "safe_reversible", "cgroup",
       ("systemctl", "set-property", "--runtime", "{unit}", "CPUQuota={percent}%"),
       "systemctl set-property --runtime {unit} CPUQuota={old_percent}% (runtime only: a "
       "reboot also restores it)", "cgroup_cpu_throttled_ratio", "down",
       ("cgroup_cpu_throttling",), "Raise the unit's CPU quota for this boot only."),
    _a("lower_cgroup_weights", "safe_reversible", "cgroup",
       ("systemctl", "set-property", "--runtime", "{unit}", "CPUWeight=10", "IOWeight=10"),
       "systemctl set-property --runtime {unit} CPUWeight=100 IOWeight=100",
       "cgroup_pressure_some_ratio", "down", ("noisy_neighbour",),
       "Give the noisy neighbour the lowest CPU and IO weight for this boot only."),
    _a("raise_process_fd_limit", "safe_reversible", "process",
       ("prlimit", "--pid", "{pid}", "--nofile={count}:{count}"),
       "prlimit --pid {pid} --nofile={old_count}:{old_count}", "process_fds_used_ratio", "down",
       ("fd_exhaustion",), "Raise the process's open-files limit (buys time; find the leak)."),
    _a("raise_somaxconn", "safe_reversible", "host",
       ("sysctl", "-w", "net.core.somaxconn={count}"),
       "sysctl -w net.core.somaxconn={old_count}", "tcp_listen_overflows_per_second", "down",
       ("listen_backlog_overflow",), "Raise the kernel's cap on listen backlogs (the "
       "application must also ask for a larger backlog)."),
    _a("lower_swappiness", "safe_reversible", "host", ("sysctl", "-w", "vm.swappiness=10"),
       "sysctl -w vm.swappiness={old_count}", "swap_in_pages_per_second", "down",
       ("swap_thrash",), "Make the kernel prefer dropping page cache to swapping."),
    # --- impacting ---
    _a("restart_unit", "impacting", "cgroup", ("systemctl", "restart", "{unit}"),
       "none: a restart cannot be undone, only repeated", "process_rss_bytes", "down",
       ("memory_leak_oom", "fd_exhaustion"), "Restart the service that owns the leaking "
       "process (drops its connections)."),
    _a("bounce_link", "impacting", "nic", ("ip", "link", "set", "dev", "{nic}", "down"),
       "ip link set dev {nic} up", "network_carrier_changes_total", "down", ("nic_link_flap",),
       "Take the flapping link down so bonding or routing fails over."),
    _a("lower_gpu_power_limit", "impacting", "gpu", ("nvidia-smi", "-i", "{gpu}", "-pl",
                                                       "{watts}"),
       "nvidia-smi -i {gpu} -pl {old_watts}", "gpu_temperature_celsius", "down",
       ("gpu_thermal_throttle",), "Cap the hot GPU's power so it throttles less abruptly."),
    _a("restore_gpu_power_limit", "impacting", "gpu",
       ("nvidia-smi", "-i", "{gpu}", "-pl", "{watts}"), "nvidia-smi -i {gpu} -pl {old_watts}",
       "gpu_throttled", "down", ("gpu_power_throttle",),
       "Set the GPU's power limit back to its default."),
    _a("cordon_gpu_node", "impacting", "gpu", ("kubectl", "cordon", "{node}"),
       "kubectl uncordon {node}", "gpu_utilisation_ratio", "down",
       ("gpu_xid", "gpu_ecc_dbe", "nvlink_degradation", "pcie_degradation",
        "collective_straggler", "rdma_link_errors"),
       "Stop scheduling new work on the node with the failing GPU or link."),
    # --- destructive: proposed for the record, never executed ---
    _a("kill_process", "destructive", "process", ("kill", "-TERM", "{pid}"),
       "none: the process's state is lost", "cpu_utilisation_ratio", "down",
       ("cpu_saturation", "memory_leak_oom", "fd_exhaustion"), "Terminate the process."),
    _a("reset_gpu", "destructive", "gpu", ("nvidia-smi", "-r", "-i", "{gpu}"),
       "none: running work on the GPU is lost", "gpu_ecc_errors_total", "down",
       ("gpu_xid", "gpu_ecc_dbe", "gpu_memory_exhaustion"), "Reset the GPU (kills its "
       "processes; applies pending row remaps)."),
    _a("vacuum_journal", "destructive", "fs", ("journalctl", "--vacuum-size=500M"),
       "none: deleted logs are gone", "filesystem_used_ratio", "down", ("filesystem_full",),
       "Delete old journal files to free space."),
)

PARAMETER_PATTERNS["node"] = r"^[A-Za-z0-9.-]{1,253}$"


@dataclass(frozen=True)
class Catalogue:
    actions: tuple[ActionSpec, ...] = BUILTIN

    def __post_init__(self) -> None:
        names = [a.name for a in self.actions]
        if len(names) != len(set(names)):
            raise BadInput("action names in a catalogue must be unique", field="actions")
        for a in self.actions:
            if a.safety_class != "read_only" and not a.rollback:
                raise BadInput(f"action {a.name} changes state and has no rollback note",
                               field="rollback")

    def get(self, name: str) -> ActionSpec:
        for a in self.actions:
            if a.name == name:
                return a
        raise BadInput(f"no action {name!r} in the catalogue", field="action")

    def for_class(self, fault_class: str) -> list[ActionSpec]:
        """Actions for a fault class, least risky first."""
        hits = [a for a in self.actions if fault_class in a.fault_classes]
        return sorted(hits, key=lambda a: (SAFETY_ORDER.index(a.safety_class), a.name))

    def with_actions(self, *extra: ActionSpec) -> Catalogue:
        return Catalogue((*self.actions, *extra))


DEFAULT_CATALOGUE = Catalogue()
