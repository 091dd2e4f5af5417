"""From drivers to metrics: every series a collector on the simulated host would report.

The relations are the ones an SRE reads off a real host: CPU demand beyond the cores grows the
run queue and CPU pressure; a cgroup's quota caps its usage and shows as throttling and cgroup
CPU pressure (not host pressure); disk utilisation follows IO demand over capacity and await
follows the M/M/1 queueing curve, with in-flight IOs by Little's law and IO pressure with them;
memory beyond RAM goes to swap; every rank of a synchronous training job runs at the speed of
the slowest GPU while the others spin in the collective.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sreagent.collector._ib import ERROR_COUNTERS as IB_COUNTERS
from sreagent.collector._ib import HW_ERROR_COUNTERS as IB_HW_COUNTERS
from sreagent.collector._nvml import THROTTLE_REASONS
from sreagent.collector._sockdiag import STATES as TCP_STATES
from sreagent.scenarios._world import (
    IB_ERROR_COUNTERS,
    NVLINK_ERROR_TYPES,
    Proc,
    World,
    smooth_noise,
)
from sreagent.telemetry.names import METRICS_BY_NAME, entity, entity_kind

_WHOLE_NUMBERS = {
    "procs_running", "procs_blocked", "memory_total_bytes", "memory_used_bytes",
    "memory_available_bytes", "memory_cached_bytes", "swap_used_bytes", "oom_kills_total",
    "disk_in_flight", "disk_io_errors_total", "filesystem_free_bytes",
    "network_carrier_changes_total", "network_link_up", "tcp_established", "fds_allocated",
    "process_rss_bytes", "processes_total", "cgroup_memory_used_bytes",
    "cgroup_memory_limit_bytes", "cgroup_memory_failcnt_total", "cgroup_oom_kills_total",
    "gpu_memory_used_bytes", "gpu_temperature_celsius", "gpu_sm_clock_hertz", "gpu_throttled",
    "gpu_ecc_errors_total", "gpu_remapped_rows_total", "gpu_pcie_link_width",
    "gpu_pcie_link_generation", "gpu_nvlink_errors_total", "gpu_nvlink_active_links",
    "ib_port_errors_total", "ib_port_up", "collector_rss_bytes", "collector_spool_bytes",
    "collector_spool_dropped_total", "collector_spool_corrupt_total", "collector_mode",
    "tcp_listen_queue_length", "tcp_sockets", "process_pss_bytes", "gpu_memory_clock_hertz",
    "gpu_bar1_used_bytes", "gpu_process_memory_bytes", "gpu_retired_pages_total",
    "gpu_remapped_rows_pending", "collector_kmsg_lost_records_total",
    "collector_ebpf_lost_events_total", "collector_spool_records", "collector_sources_shed",
    "collector_batches_delivered_total", "collector_transport_errors_total",
    "collector_ack_mismatches_total", "collector_dead_letters_total",
    "collector_source_errors_total",
}
"""Metrics a collector reads as integers (kernel counters, byte counts, NVML integers)."""


@dataclass
class SeriesBook:
    """The emitted series, in emission order: key, values per step, presence per step."""

    steps: int
    keys: list[tuple[str, str, tuple[tuple[str, str], ...]]] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    present: list[np.ndarray | None] = field(default_factory=list)

    def add(self, metric: str, entity_name: str, values: np.ndarray | float,
            present: np.ndarray | None = None, **labels: str) -> None:
        spec = METRICS_BY_NAME[metric]  # a KeyError here is a bug: names.py is the one list
        if tuple(sorted(labels)) != tuple(sorted(spec.labels)):
            raise AssertionError(f"{metric} takes labels {spec.labels}, got {sorted(labels)}")
        if entity_kind(entity_name) != spec.entity:
            raise AssertionError(f"{metric} is reported for {spec.entity}, not {entity_name}")
        array = np.broadcast_to(np.asarray(values, dtype=np.float64), (self.steps,))
        if metric in _WHOLE_NUMBERS:
            array = np.rint(array)
        elif metric == "load_average_1m":
            array = np.round(array, 2)
        else:
            array = np.round(array, 6)
        self.keys.append((metric, entity_name, tuple(sorted(labels.items()))))
        self.values.append(array + 0.0)  # + 0.0 turns -0.0 into 0.0: same bytes every time
        self.present.append(None if present is None or present.all() else present.copy())


@dataclass
class ProcessColumns:
    """What the process rows need, per process slot."""

    procs: list[Proc]
    cpu: np.ndarray
    """Actual CPU in cores (after quotas and contention), shape (procs, steps)."""
    read_bps: np.ndarray
    write_bps: np.ndarray
    cpu_delay: np.ndarray
    blkio_delay: np.ndarray
    swapin_delay: np.ndarray


def _cum(rate: np.ndarray, dt: float, start: float = 0.0) -> np.ndarray:
    return start + np.cumsum(rate * dt, axis=-1)


LISTEN_BACKLOG = 4096
"""Accept-queue size of the listeners (net.core.somaxconn's default since Linux 5.4)."""


def _counter_with_resets(increments: np.ndarray, resets: list[int], start: float) -> np.ndarray:
    total = start + np.cumsum(increments)
    for step in sorted(resets):
        total[step:] -= total[step] - increments[step]
    return total


def derive(world: World) -> tuple[SeriesBook, ProcessColumns]:
    """Every metric series and the process columns of a world."""
    prof, n, dt = world.profile, world.steps, world.dt
    book = SeriesBook(n)
    procs = world.procs
    alive = np.array([p.alive for p in procs])
    demand = np.array([p.cpu for p in procs]) * alive
    rng = world.rng("derive")
    ncpu = float(prof.cpu_count)

    # ---- cgroup CPU quotas
    cg_demand: dict[str, np.ndarray] = {}
    cg_throttled: dict[str, np.ndarray] = {}
    cg_excess: dict[str, np.ndarray] = {}
    cpu = demand.copy()
    for cg in prof.cgroups:
        members = [i for i, p in enumerate(procs) if p.cgroup == cg.path]
        d = demand[members].sum(axis=0) if members else np.zeros(n)
        cg_demand[cg.path] = d
        if cg.cpu_limit_cores is not None and members:
            scale = np.minimum(1.0, cg.cpu_limit_cores / np.maximum(d, 1e-9))
            cpu[members] *= scale
            x = d / cg.cpu_limit_cores
            cg_throttled[cg.path] = 1.0 / (1.0 + np.exp(-(x - 0.97) * 14.0))
            cg_excess[cg.path] = np.maximum(d - cg.cpu_limit_cores, 0.0)

    # ---- memory (before disks: swapping is IO)
    rss = np.array([p.rss for p in procs]) * alive
    total = float(prof.memory_bytes)
    want = prof.kernel_memory_bytes + rss.sum(axis=0)
    reserve = 0.02 * total
    swapped = np.clip(want - (total - reserve), 0.0, float(prof.swap_bytes))
    resident = np.minimum(want - swapped, total - reserve)
    thrash = world.swap_activity if world.swap_activity is not None else np.zeros(n)
    mem_noise = smooth_noise(rng, n)
    swap_out = thrash * 14_000 * (1 + 0.1 * mem_noise) + np.maximum(np.diff(swapped, prepend=swapped[0]), 0) / 4096 / dt
    swap_in = thrash * 16_000 * (1 + 0.1 * mem_noise)
    psi_mem = np.clip((resident / total - 0.93) * 10, 0, 1) * 0.4 + np.clip(thrash, 0, 1) * 0.55

    # ---- disks
    disk_scale: dict[str, np.ndarray] = {}
    disk_psi: dict[str, np.ndarray] = {}
    disk_stats: dict[str, dict[str, np.ndarray]] = {}
    fs_write_rate = {fs.disk: np.zeros(n) for fs in prof.filesystems}
    for fs in prof.filesystems:
        growth = np.diff(world.fs_extra_bytes[fs.mount], prepend=0.0) / dt
        inode_growth = np.diff(world.fs_extra_inodes[fs.mount], prepend=0.0) / dt
        fs_write_rate[fs.disk] = fs_write_rate[fs.disk] + np.maximum(growth, 0) + np.maximum(inode_growth, 0) * 4096
    swap_disk = prof.disks[0].name
    read_raw = np.array([p.read_bps for p in procs]) * alive
    write_raw = np.array([p.write_bps for p in procs]) * alive
    proc_disk = [p.disk for p in procs]
    for disk in prof.disks:
        members = [i for i, d in enumerate(proc_disk) if d == disk.name]
        r = read_raw[members].sum(axis=0) if members else np.zeros(n)
        w = write_raw[members].sum(axis=0) if members else np.zeros(n)
        w = w + fs_write_rate.get(disk.name, 0.0)
        if disk.name == swap_disk:
            r, w = r + swap_in * 4096, w + swap_out * 4096
        dn = smooth_noise(world.rng("disk", disk.name), n)
        r = r + 20e3 * (1 + 0.3 * dn)  # journald, metadata: a trickle that never stops
        w = w + 150e3 * (1 + 0.3 * dn)
        iops_cap, bw_cap, svc = disk.capacity()
        io_size = 512 * 1024 if disk.kind == "hdd" else 64 * 1024
        m = world.disk_latency[disk.name]
        rho = np.maximum((r + w) / io_size / (iops_cap / m), (r + w) / (bw_cap / m))
        scale = np.minimum(1.0, 1.0 / np.maximum(rho, 1e-12))
        disk_scale[disk.name] = scale
        rs, ws = r * scale, w * scale
        util = np.minimum(rho, 1.0) * np.where(rho >= 1.0, 0.985 + 0.01 * np.abs(np.tanh(dn)), 1.0)
        await_s = svc * m / (1.0 - np.minimum(rho, 0.95)) * (1.0 + 4.0 * np.maximum(rho - 1.0, 0.0))
        iops = (rs + ws) / io_size
        in_flight = iops * await_s
        psi = np.clip((rho - 0.55) / 0.45, 0, 1) ** 2 * 0.85
        disk_psi[disk.name] = psi
        disk_stats[disk.name] = {"r": rs, "w": ws, "util": util, "await": await_s,
                                 "in_flight": in_flight, "iops_r": rs / io_size,
                                 "iops_w": ws / io_size}
    psi_io = 1.0 - np.prod([1.0 - disk_psi[d.name] for d in prof.disks], axis=0)
    blocked = sum(np.minimum(disk_stats[d.name]["in_flight"], 64.0) * 0.25 for d in prof.disks)
    blocked = blocked + np.abs(smooth_noise(rng, n)) * 0.3 + thrash * 3

    # ---- network (softirq CPU comes from packets)
    nic_stats: dict[str, dict[str, np.ndarray]] = {}
    sent_segments = np.zeros(n)
    retransmits = np.zeros(n)
    for nic in prof.nics:
        nn = smooth_noise(world.rng("nic", nic.name), n)
        up = world.nic_up[nic.name].astype(float)
        loss = world.nic_loss[nic.name]
        goodput = up * np.clip(1.0 - 4.0 * loss, 0.15, 1.0)
        rx = nic.rx_bytes_per_second * world.load * (1 + world.noise * 1.5 * nn) * goodput
        tx = nic.tx_bytes_per_second * world.load * (1 + world.noise * 1.5 * nn) * goodput
        rx, tx = np.clip(rx, 0, None), np.clip(tx, 0, None)
        rxp, txp = rx / 900.0, tx / 1100.0
        sent_segments += txp * 0.95
        retransmits += txp * 0.95 * loss * 1.1
        nic_stats[nic.name] = {"rx": rx, "tx": tx, "rxp": rxp, "txp": txp, "up": up,
                               "drops": rxp * loss + np.abs(nn) * 0.02,
                               "errors": world.nic_rx_errors[nic.name]}
    packets = sum(s["rxp"] + s["txp"] for s in nic_stats.values())

    # ---- host CPU
    kernel = 0.02 * ncpu + packets / 400_000 + sum(
        (disk_stats[d.name]["r"] + disk_stats[d.name]["w"]) for d in prof.disks) / 3e9
    proc_sum = cpu.sum(axis=0)
    want_cpu = proc_sum + kernel
    contention = np.minimum(1.0, np.maximum(ncpu - kernel, 0.1) / np.maximum(proc_sum, 1e-9))
    cpu = cpu * contention
    busy = np.minimum(want_cpu, ncpu) / ncpu
    cn = smooth_noise(rng, n)
    steal = np.clip(0.003 + 0.002 * cn, 0, None) if "virtual" in {d.kind for d in prof.disks} else np.zeros(n)
    busy = np.minimum(busy, 1.0 - steal)
    iowait = np.minimum(np.clip(psi_io * 0.5 + 0.002 * np.abs(cn), 0, None), 1.0 - busy - steal)
    idle = np.clip(1.0 - busy - steal - iowait, 0, 1)
    softirq = np.minimum(0.03 * busy + packets / 400_000 / ncpu, busy)
    irq = 0.01 * busy
    system = 0.2 * busy
    user = np.clip(busy - softirq - irq - system, 0, None)
    running = np.maximum(1.0, np.rint(want_cpu * 0.9 + 0.3 * np.sqrt(want_cpu) * cn))
    psi_cpu = 0.9 * np.clip((want_cpu / ncpu - 0.75) / 0.75, 0, 1) ** 1.2 + 0.002 * np.abs(cn)
    alpha = 1.0 - np.exp(-dt / 60.0)
    load_avg = np.empty(n)
    level = float(running[0] + blocked[0])
    for i, x in enumerate(running + blocked):
        level += alpha * (x - level)
        load_avg[i] = level

    book.add("cpu_utilisation_ratio", "host", busy + steal)
    for mode, share in (("user", user), ("nice", np.zeros(n)), ("system", system),
                        ("idle", idle), ("iowait", iowait), ("irq", irq), ("softirq", softirq),
                        ("steal", steal)):
        book.add("cpu_mode_ratio", "host", share, mode=mode)
    core_noise = smooth_noise(world.rng("cores"), n, prof.cpu_count)
    for i in range(prof.cpu_count):
        book.add("cpu_core_utilisation_ratio", entity("cpu", i),
                 np.clip(busy * (1 + 0.15 * core_noise[i]), 0, 1))
    book.add("cpu_iowait_ratio", "host", iowait)
    book.add("cpu_steal_ratio", "host", steal)
    book.add("load_average_1m", "host", load_avg)
    book.add("procs_running", "host", running)
    book.add("procs_blocked", "host", np.rint(blocked))
    cs = (900 + 3_500 * ncpu * busy + 400 * running) * (1 + 0.05 * cn)
    book.add("context_switches_per_second", "host", cs)
    book.add("cpu_migrations_per_second", "host", cs * 0.04)
    rss_growth = np.maximum(np.diff(rss.sum(axis=0), prepend=rss.sum(axis=0)[0]), 0) / dt
    book.add("page_faults_per_second", "host",
             (2_500 + 12_000 * busy) * (1 + 0.05 * cn) + rss_growth / 4096)
    book.add("major_page_faults_per_second", "host", swap_in * 0.9 + 0.3 * np.abs(cn))
    # eBPF run-queue latency: microseconds on an idle host, milliseconds once CPU-bound.
    runq = 4e-6 * (1 + 0.2 * np.abs(cn)) + psi_cpu * 4e-3
    for q, factor in (("0.5", 1.0), ("0.9", 3.0), ("0.99", 9.0)):
        book.add("runqueue_latency_seconds", "host", runq * factor, quantile=q)
    exits = world.process_exits if world.process_exits is not None else np.zeros(n)
    book.add("process_execs_per_second", "host", 1.5 + 0.5 * np.abs(cn) + world.execs_extra)
    book.add("process_exits_per_second", "host", 1.5 + 0.5 * np.abs(cn) + world.execs_extra + exits / dt)

    # ---- memory
    cached = np.maximum(total - resident, 0) * 0.55 * (1 + 0.002 * mem_noise)
    free = np.maximum(total - resident - cached, 0)
    book.add("memory_total_bytes", "host", total)
    book.add("memory_used_bytes", "host", resident)
    book.add("memory_available_bytes", "host", free + 0.88 * cached)
    book.add("memory_used_ratio", "host", resident / total)
    book.add("memory_cached_bytes", "host", cached)
    book.add("swap_used_bytes", "host", swapped + (0.0 if prof.swap_bytes == 0 else 64 * 2**20))
    book.add("swap_in_pages_per_second", "host", swap_in)
    book.add("swap_out_pages_per_second", "host", swap_out)
    oom = world.oom_kills if world.oom_kills is not None else np.zeros(n)
    book.add("oom_kills_total", "host", np.cumsum(oom))

    # ---- PSI
    psi_mem = psi_mem + 0.001 * np.abs(mem_noise)
    psi_io = psi_io + 0.001 * np.abs(cn)
    for resource, some in (("cpu", psi_cpu), ("memory", psi_mem), ("io", psi_io)):
        book.add("pressure_some_ratio", "host", np.clip(some, 0, 1), resource=resource)
        book.add("pressure_stall_seconds_total", "host", _cum(np.clip(some, 0, 1), dt, 1_000.0),
                 resource=resource, kind="some")
    for resource, full in (("cpu", np.zeros(n)), ("memory", psi_mem * 0.6), ("io", psi_io * 0.6)):
        book.add("pressure_full_ratio", "host", np.clip(full, 0, 1), resource=resource)
        book.add("pressure_stall_seconds_total", "host", _cum(np.clip(full, 0, 1), dt, 400.0),
                 resource=resource, kind="full")

    # ---- disks and filesystems
    for disk in prof.disks:
        s, ent = disk_stats[disk.name], entity("disk", disk.name)
        book.add("disk_reads_per_second", ent, s["iops_r"])
        book.add("disk_writes_per_second", ent, s["iops_w"])
        book.add("disk_read_bytes_per_second", ent, s["r"])
        book.add("disk_write_bytes_per_second", ent, s["w"])
        book.add("disk_await_seconds", ent, s["await"])
        book.add("disk_utilisation_ratio", ent, s["util"])
        book.add("disk_in_flight", ent, s["in_flight"])
        book.add("disk_io_errors_total", ent, np.cumsum(world.disk_errors[disk.name]))
        for q, factor in (("0.5", 0.7), ("0.9", 2.0), ("0.99", 5.0)):
            book.add("disk_request_latency_seconds", ent, s["await"] * factor, quantile=q)
    for fs in prof.filesystems:
        used = fs.used_ratio * fs.size_bytes + world.fs_extra_bytes[fs.mount]
        avail = np.clip(0.95 * fs.size_bytes - used, 0, None)
        book.add("filesystem_used_ratio", fs.entity, np.clip(used / (used + avail), 0, 1))
        book.add("filesystem_free_bytes", fs.entity, avail)
        inodes = fs.inodes_used_ratio * fs.inodes + world.fs_extra_inodes[fs.mount]
        book.add("filesystem_inodes_used_ratio", fs.entity, np.clip(inodes / fs.inodes, 0, 1))

    # ---- network
    for nic in prof.nics:
        s, ent = nic_stats[nic.name], entity("nic", nic.name)
        book.add("network_receive_bytes_per_second", ent, s["rx"])
        book.add("network_transmit_bytes_per_second", ent, s["tx"])
        book.add("network_receive_packets_per_second", ent, s["rxp"])
        book.add("network_transmit_packets_per_second", ent, s["txp"])
        book.add("network_errors_per_second", ent, s["errors"], direction="receive")
        book.add("network_errors_per_second", ent, 0.0, direction="transmit")
        book.add("network_drops_per_second", ent, s["drops"], direction="receive")
        book.add("network_drops_per_second", ent, 0.0, direction="transmit")
        book.add("network_carrier_changes_total", ent,
                 2.0 + np.cumsum(world.nic_carrier_changes[nic.name]))
        book.add("network_link_up", ent, s["up"])
    tn = smooth_noise(world.rng("tcp"), n)
    base_retrans = sent_segments * 0.0006 * (1 + 0.3 * tn)
    retransmits = retransmits + np.clip(base_retrans, 0, None)
    book.add("tcp_retransmit_ratio", "host", retransmits / np.maximum(sent_segments, 1.0))
    book.add("tcp_retransmits_per_second", "host", retransmits)
    overflow = sum(world.listen_overflow.values()) if world.listen_overflow else np.zeros(n)
    book.add("tcp_listen_overflows_per_second", "host", overflow)
    book.add("tcp_listen_drops_per_second", "host", overflow * 1.05)
    fill = max(world.listen_fill.values(), key=lambda a: float(a.max())) if world.listen_fill else np.zeros(n)
    links_up = np.mean([s["up"] for s in nic_stats.values()], axis=0)
    established = 40 + 160 * world.load * (1 + 0.05 * tn) * links_up * (1 - 0.4 * np.clip(fill - 0.5, 0, 1))
    book.add("tcp_established", "host", established)
    for port, port_fill in sorted(world.listen_fill.items()):
        ratio = np.clip(0.01 + 0.02 * world.load * np.abs(tn) + port_fill, 0, 1)
        book.add("tcp_listen_backlog_ratio", "host", ratio, port=str(port))
        book.add("tcp_listen_queue_length", "host", np.rint(ratio * LISTEN_BACKLOG), port=str(port))
    listeners = len(world.listen_fill) + 3
    by_state = {"established": established, "listen": np.full(n, float(listeners)),
                "time_wait": established * 0.6, "close_wait": np.rint(np.abs(tn)),
                "syn_recv": np.rint(2 * np.abs(tn)) + 20 * np.clip(fill - 0.9, 0, 1) * 10}
    for state in sorted(set(TCP_STATES.values())):
        book.add("tcp_sockets", "host", by_state.get(state, np.zeros(n)), state=state)
    # eBPF skb:kfree_skb by reason: a trickle of unmatched packets, plus what the NICs lose.
    lost = sum(s["drops"] for s in nic_stats.values())
    book.add("packet_drops_per_second", "host", 0.4 + 0.3 * np.abs(tn), reason="NO_SOCKET")
    book.add("packet_drops_per_second", "host", 0.1 * np.abs(tn) + lost, reason="NOT_SPECIFIED")

    # ---- file descriptors and processes
    fds = np.array([p.fds for p in procs]) * alive
    allocated = 2_400 + fds.sum(axis=0)
    book.add("fds_allocated", "host", allocated)
    book.add("fds_used_ratio", "host", allocated / prof.fd_max)
    book.add("processes_total", "host", 95 + alive.sum(axis=0))
    for i, p in enumerate(procs):
        if not p.tracked:
            continue
        book.add("process_cpu_ratio", p.entity, cpu[i], present=p.alive)
        book.add("process_rss_bytes", p.entity, rss[i], present=p.alive)
        book.add("process_pss_bytes", p.entity, rss[i] * 0.93, present=p.alive)
        book.add("process_fds_used_ratio", p.entity, fds[i] / p.fd_limit, present=p.alive)

    # ---- cgroups
    proc_scale = np.array([disk_scale[d] if d else np.ones(n) for d in proc_disk])
    read_served = read_raw * proc_scale
    write_served = write_raw * proc_scale
    for cg in prof.cgroups:
        members = [i for i, p in enumerate(procs) if p.cgroup == cg.path]
        usage = cpu[members].sum(axis=0) if members else np.zeros(n)
        ent = cg.entity
        book.add("cgroup_cpu_usage_ratio", ent, usage)
        throttled = cg_throttled.get(cg.path, np.zeros(n))
        book.add("cgroup_cpu_throttled_ratio", ent, throttled)
        excess = cg_excess.get(cg.path, np.zeros(n))
        book.add("cgroup_cpu_throttled_seconds_per_second", ent, excess + 0.02 * throttled)
        if cg.cpu_limit_cores is not None:
            book.add("cgroup_cpu_limit_cores", ent, cg.cpu_limit_cores)
        mem = rss[members].sum(axis=0) * 1.08 if members else np.zeros(n)
        book.add("cgroup_memory_used_bytes", ent, mem)
        if cg.memory_limit_bytes is not None:
            book.add("cgroup_memory_limit_bytes", ent, cg.memory_limit_bytes)
            book.add("cgroup_memory_used_ratio", ent, np.clip(mem / cg.memory_limit_bytes, 0, 1))
        resets = world.cgroup_counter_resets.get(cg.path, [])
        book.add("cgroup_memory_failcnt_total", ent,
                 _counter_with_resets(world.cgroup_failcnt[cg.path], resets, 0.0))
        book.add("cgroup_oom_kills_total", ent,
                 _counter_with_resets(world.cgroup_oom_kills[cg.path], resets, 0.0))
        io_r = read_served[members].sum(axis=0) if members else np.zeros(n)
        io_w = write_served[members].sum(axis=0) if members else np.zeros(n)
        book.add("cgroup_io_bytes_per_second", ent, io_r, direction="read")
        book.add("cgroup_io_bytes_per_second", ent, io_w, direction="write")
        used_disks = {d for i in members if (d := proc_disk[i]) is not None}
        io_share = np.clip((io_r + io_w) / 1e5, 0, 1)
        cg_psi_io = max((disk_psi[d] for d in sorted(used_disks)), key=lambda a: float(a.sum()),
                        default=np.zeros(n)) * io_share
        cg_psi_cpu = np.maximum(throttled * 0.85, psi_cpu * (usage > 0.01))
        cg_psi_mem = psi_mem * (mem > 0)
        if cg.memory_limit_bytes is not None:
            cg_psi_mem = np.maximum(cg_psi_mem, np.clip((mem / cg.memory_limit_bytes - 0.92) * 8, 0, 1) * 0.7)
        for resource, value in (("cpu", cg_psi_cpu), ("memory", cg_psi_mem), ("io", cg_psi_io)):
            book.add("cgroup_pressure_some_ratio", ent, np.clip(value, 0, 1), resource=resource)
            book.add("cgroup_pressure_full_ratio", ent, np.clip(value * 0.5, 0, 1),
                     resource=resource)

    if prof.gpus:
        _derive_gpus(world, book, procs)

    # ---- the collector's own health
    kn = smooth_noise(world.rng("collector"), n)
    book.add("collector_cpu_seconds_per_second", "collector", np.clip(0.012 + 0.002 * kn, 0, None))
    book.add("collector_rss_bytes", "collector", 58 * 2**20 + 2**20 * np.rint(np.abs(kn)))
    book.add("collector_spool_bytes", "collector", 0.0)
    book.add("collector_spool_dropped_total", "collector", 0.0)
    book.add("collector_spool_corrupt_total", "collector", 0.0)
    book.add("collector_spool_records", "collector", 0.0)
    book.add("collector_mode", "collector", 0.0)
    book.add("collector_interval_seconds", "collector", dt)
    book.add("collector_sources_shed", "collector", 0.0)
    book.add("collector_sample_duration_seconds", "collector",
             np.clip(0.004 + 0.0005 * kn, 0.0001, None))
    book.add("collector_kmsg_lost_records_total", "collector", 0.0)
    book.add("collector_ebpf_lost_events_total", "collector", 0.0)
    # Every batch before this one was acknowledged: one delivery per interval.
    book.add("collector_batches_delivered_total", "collector", 1000.0 + np.arange(n))
    book.add("collector_transport_errors_total", "collector", 0.0)
    book.add("collector_ack_mismatches_total", "collector", 0.0)
    book.add("collector_dead_letters_total", "collector", 0.0)

    # ---- process columns
    io_psi_per_proc = np.array([disk_psi[d] if d else np.zeros(n) for d in proc_disk])
    columns = ProcessColumns(
        procs=procs, cpu=cpu, read_bps=read_served, write_bps=write_served,
        cpu_delay=_cum(cpu * psi_cpu + 0.001, dt),
        blkio_delay=_cum(io_psi_per_proc * ((read_raw + write_raw) > 0), dt),
        swapin_delay=_cum(np.repeat(thrash[None, :], len(procs), axis=0) * (rss > 1e8), dt),
    )
    return book, columns


def _derive_gpus(world: World, book: SeriesBook, procs: list[Proc]) -> None:
    spec = world.profile.gpus
    assert spec is not None and world.job_speed is not None
    g = world.gpu
    count, n = spec.count, world.steps
    rank_alive = np.zeros((count, n), bool)
    for p in procs:
        if p.gpu is not None:
            rank_alive[p.gpu] |= p.alive
    has_rank = np.array([any(p.gpu == i for p in procs) for i in range(count)])
    busy = g["busy"] * rank_alive
    # A dead rank stalls the whole job: the live ranks spin in the collective, waiting.
    live = has_rank[:, None] & rank_alive
    job_broken = (has_rank[:, None] & ~rank_alive).any(axis=0)
    # Per-GPU speed: clocks (thermal, power, brake) and PCIe bandwidth.
    temp_guess = g["temp_base"] + 0.045 * (
        spec.idle_watts + (0.85 * spec.power_cap_watts - spec.idle_watts) * busy
    ) + g["temp_offset"]
    thermal = np.clip(1.0 - 0.045 * np.maximum(temp_guess - spec.slowdown_celsius, 0), 0.45, 1.0)
    nominal = spec.idle_watts + (0.85 * spec.power_cap_watts - spec.idle_watts) * busy * thermal
    power_factor = np.clip(
        (g["power_limit"] - spec.idle_watts) / np.maximum(nominal - spec.idle_watts, 1e-9), 0.2, 1.0
    )
    # Power grows with clock^1.5 below (voltage follows frequency), so a GPU held at its power
    # limit runs at the clock that draws exactly that limit.
    clock = thermal * power_factor ** (2 / 3) * np.where(g["brake"] > 0, 0.35, 1.0)
    pcie_cap = g["pcie_width"] / 16.0 * 2.0 ** (g["pcie_gen"] - spec.pcie_generation)
    pcie_factor = np.clip(pcie_cap / 0.6, 0.3, 1.0)  # a job needs 60 % of the full link
    per_gpu = clock * pcie_factor
    # Synchronous training: every rank progresses at the pace of the slowest one.
    slowest = np.min(np.where(live, per_gpu * g["busy"], np.inf), axis=0)
    slowest = np.where(np.isfinite(slowest), slowest, 0.0)
    speed = np.where(job_broken, 0.0, world.job_speed * slowest)
    # Each rank computes for its share of the step and spins in the collective for the rest.
    computing = np.where(live, np.minimum(speed / np.maximum(per_gpu, 1e-9), g["busy"]), 0.0)
    spin = np.where(live, np.clip(g["busy"] - computing + g["spin"], 0, 1), 0.0)
    noise = g["noise"]
    util = np.clip((computing + spin) * (0.97 + 0.02 * np.tanh(noise)), 0, 1) * rank_alive
    power = spec.idle_watts + (0.85 * spec.power_cap_watts - spec.idle_watts) * computing * np.minimum(clock, 1.0) ** 1.5 \
        + 0.22 * spec.power_cap_watts * spin
    power = np.minimum(power * (1 + 0.01 * noise), g["power_limit"])
    temp = g["temp_base"] + 0.045 * power + g["temp_offset"] + 0.4 * noise
    # Thermal slowdown is a regulator: it holds the die just above the threshold by cutting
    # clocks, so a throttled GPU reads slightly over the slowdown temperature, not far above.
    over = temp_guess - spec.slowdown_celsius
    temp = np.where(over > 0, spec.slowdown_celsius + 0.15 * over + 0.4 * noise, temp)
    sm_clock = spec.max_sm_clock_hertz * np.where(util > 0.02, clock, 0.175)
    mem_used = np.where(rank_alive, g["mem_ratio"], 0.006) * spec.memory_bytes
    pcie_bytes = 6e9 * computing * np.minimum(pcie_factor, 1.0)
    never = np.zeros((count, n), bool)
    active = {
        "gpu_idle": util < 0.05,
        "sw_power_cap": power_factor < 0.99,
        "hw_slowdown": (g["brake"] > 0) | (temp > spec.slowdown_celsius + 5),
        "sw_thermal_slowdown": temp > spec.slowdown_celsius - 2,
        "hw_thermal_slowdown": temp > spec.slowdown_celsius + 3,
        "hw_power_brake_slowdown": g["brake"] > 0,
    }
    # Every reason the collector decodes is reported each interval, 0 or 1 (as NVML does).
    reasons = {name: active.get(name, never) for name in (*THROTTLE_REASONS.values(), "other")}
    rank_pid = {p.gpu: p for p in procs if p.gpu is not None}
    links = spec.nvlink_links
    for i in range(count):
        ent, present = entity("gpu", i), g["present"][i]
        book.add("gpu_utilisation_ratio", ent, util[i], present)
        book.add("gpu_memory_used_bytes", ent, mem_used[i], present)
        book.add("gpu_memory_used_ratio", ent, mem_used[i] / spec.memory_bytes, present)
        book.add("gpu_temperature_celsius", ent, temp[i], present)
        book.add("gpu_power_watts", ent, np.round(power[i], 3), present)
        book.add("gpu_power_limit_watts", ent, g["power_limit"][i], present)
        book.add("gpu_sm_clock_hertz", ent, np.round(sm_clock[i] / 15e6) * 15e6, present)
        book.add("gpu_memory_clock_hertz", ent, np.where(util[i] > 0.02, 2.619e9, 1.593e9), present)
        book.add("gpu_bar1_used_bytes", ent, np.where(rank_alive[i], 2**30, 2**22), present)
        rank = rank_pid.get(i)
        if rank is not None:
            book.add("gpu_process_memory_bytes", ent, mem_used[i] - 5 * 2**20,
                     present & rank.alive, pid=str(rank.pid))
        for reason, active in reasons.items():
            book.add("gpu_throttled", ent, active[i].astype(float), present, reason=reason)
        book.add("gpu_ecc_errors_total", ent, g["ecc_corrected"][i], present, type="corrected")
        book.add("gpu_ecc_errors_total", ent, g["ecc_uncorrected"][i], present, type="uncorrected")
        book.add("gpu_retired_pages_total", ent, 0.0, present, cause="multiple_single_bit")
        book.add("gpu_retired_pages_total", ent, 0.0, present, cause="double_bit")
        book.add("gpu_remapped_rows_total", ent, g["remap_correctable"][i], present, cause="corrected")
        book.add("gpu_remapped_rows_total", ent, g["remap_uncorrectable"][i], present, cause="uncorrected")
        book.add("gpu_remapped_rows_pending", ent, g["remap_pending"][i], present)
        book.add("gpu_pcie_link_width", ent, g["pcie_width"][i], present)
        book.add("gpu_pcie_link_generation", ent, g["pcie_gen"][i], present)
        book.add("gpu_pcie_bytes_per_second", ent, pcie_bytes[i] * 0.8, present, direction="receive")
        book.add("gpu_pcie_bytes_per_second", ent, pcie_bytes[i] * 0.2, present, direction="transmit")
        assert world.gpu_nvlink_errors is not None
        for link in range(links):
            for k, kind in enumerate(NVLINK_ERROR_TYPES):
                book.add("gpu_nvlink_errors_total", ent, world.gpu_nvlink_errors[i, link, k],
                         present, link=str(link), type=kind)
        book.add("gpu_nvlink_active_links", ent, g["nvlink_active"][i], present)
    assert world.ib_errors is not None
    ib_noise = smooth_noise(world.rng("ib"), n, max(len(world.profile.ib_ports), 1))
    for j, port in enumerate(world.profile.ib_ports):
        rate = port.bytes_per_second * speed * world.ib["rate"][j] * world.ib["up"][j]
        rate = np.clip(rate * (1 + 0.03 * ib_noise[j]), 0, None)
        book.add("ib_port_bytes_per_second", port.entity, rate, direction="receive")
        book.add("ib_port_bytes_per_second", port.entity, rate, direction="transmit")
        book.add("ib_port_up", port.entity, world.ib["up"][j])
        for counter in (*IB_COUNTERS, *IB_HW_COUNTERS):
            driven = counter in IB_ERROR_COUNTERS
            values = world.ib_errors[j, IB_ERROR_COUNTERS.index(counter)] if driven else 0.0
            book.add("ib_port_errors_total", port.entity, values, counter=counter)
