"""Fault injectors: each edits the world's drivers and says where its effect is visible.

An injector takes the world and one :class:`~sreagent.scenarios._schema.Fault` and returns
the steps ``[start, end)`` in which the fault is clearly visible (after the ramp, while it is
active); the tests and the ground truth's visibility time use that window.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sreagent.errors import BadInput
from sreagent.scenarios._classes import FaultClass
from sreagent.scenarios._schema import Fault
from sreagent.scenarios._world import IB_ERROR_COUNTERS, NVLINK_ERROR_TYPES, Proc, World

Window = tuple[int, int]
Injector = Callable[[World, Fault, int], Window]

XID_CLASSES: dict[int, str] = {
    13: "application", 31: "application", 43: "application", 45: "application",
    48: "memory_dbe", 63: "memory_row_remap", 64: "memory_row_remap_failure",
    74: "nvlink", 79: "device_lost", 92: "memory_sbe_rate", 94: "memory_contained",
    95: "memory_uncontained", 119: "device_lost", 120: "device_lost",
}
"""Xid code -> code class (NVIDIA's Xid catalogue, grouped by what an operator does next)."""
_XID_TEXT = {
    13: "Graphics Engine Exception", 31: "GPU memory page fault", 43: "GPU stopped processing",
    45: "Preemptive cleanup, due to previous errors", 48: "DBE (Double Bit Error) ECC Error",
    63: "Row remapping event: pending", 64: "Row remapping failure",
    74: "NVLink error", 79: "GPU has fallen off the bus", 92: "High single-bit ECC error rate",
    94: "Contained ECC error", 95: "Uncontained ECC error", 119: "Timeout waiting for GSP",
    120: "GSP error",
}


def _param(fault: Fault, name: str, default: float) -> float:
    value = fault.params.get(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadInput(f"params.{name} must be a number, got {value!r}", field="faults")
    return float(value)


def _end(world: World, fault: Fault) -> int:
    if fault.duration_s is None:
        return world.steps
    return world.step_of(fault.onset_s + fault.duration_s)


def _full(world: World, fault: Fault) -> Window:
    return world.step_of(fault.onset_s + fault.ramp_s), _end(world, fault)


def _env(world: World, fault: Fault) -> np.ndarray:
    return world.envelope(fault.onset_s, fault.ramp_s, fault.duration_s)


def _process(world: World, target: str) -> Proc:
    try:
        return world.proc(int(target.removeprefix("process/")))
    except (KeyError, ValueError):
        raise BadInput(f"no process {target!r} in profile {world.profile.name}",
                       field="faults.target") from None


def _gpu_index(world: World, target: str) -> int:
    index = int(target.removeprefix("gpu/"))
    if world.profile.gpus is None or index >= world.profile.gpus.count:
        raise BadInput(f"profile {world.profile.name} has no {target}", field="faults.target")
    return index


def _rank(world: World, gpu: int) -> Proc | None:
    return next((p for p in world.procs if p.gpu == gpu and p.role == "trainer"), None)


# ----------------------------------------------------------------------------- host
def cpu_saturation(world: World, fault: Fault, _: int) -> Window:
    proc = _process(world, fault.target)
    proc.cpu = proc.cpu + _env(world, fault) * fault.intensity * world.profile.cpu_count * 1.6
    return _full(world, fault)


def cgroup_cpu_throttling(world: World, fault: Fault, _: int) -> Window:
    path = fault.target.removeprefix("cgroup/")
    cg = next((c for c in world.profile.cgroups if c.path == path), None)
    if cg is None or cg.cpu_limit_cores is None:
        raise BadInput(f"{fault.target} needs a CPU limit to be throttled", field="faults.target")
    members = [p for p in world.procs if p.cgroup == path and p.role in ("service", "batch")]
    if not members:
        raise BadInput(f"{fault.target} has no service process to drive", field="faults.target")
    extra = cg.cpu_limit_cores * (1.0 + 0.6 * fault.intensity)
    env = _env(world, fault)
    for p in members:
        p.cpu = p.cpu + env * extra / len(members)
    return _full(world, fault)


def memory_leak_oom(world: World, fault: Fault, _: int) -> Window:
    proc = _process(world, fault.target)
    cg = next((c for c in world.profile.cgroups if c.path == proc.cgroup), None)
    base_rss = proc.rss.copy()
    if cg is not None and cg.memory_limit_bytes is not None:
        others = sum(float(np.median(p.rss)) for p in world.procs
                     if p.cgroup == cg.path and p is not proc)
        room = cg.memory_limit_bytes / 1.08 - others - float(np.median(base_rss))
        memcg = cg.path
    else:
        others = sum(float(np.median(p.rss)) for p in world.procs if p is not proc)
        room = (world.profile.memory_bytes * 0.98 - world.profile.kernel_memory_bytes - others
                - float(np.median(base_rss)))
        memcg = None
    if room <= 0:
        raise BadInput(f"{fault.target} has no memory headroom to leak into", field="faults")
    ramp = max(fault.ramp_s, 60)
    end = _end(world, fault)
    onset = world.step_of(fault.onset_s)
    first_kill = None
    for _cycle in range(6):
        leak_steps = max(1, world.step_of(ramp / fault.intensity))
        kill = onset + leak_steps
        ramp_env = np.clip((np.arange(world.steps) - onset + 1) / leak_steps, 0.0, 1.0)
        ramp_env[: onset] = 0.0
        proc.rss = base_rss + ramp_env * room * 1.001
        if kill >= world.steps or kill >= end:
            break
        first_kill = kill if first_kill is None else first_kill
        near = (ramp_env > 0.93) & (np.arange(world.steps) < kill)
        if memcg is not None:
            world.cgroup_failcnt[memcg] = world.cgroup_failcnt[memcg] + near * 40 * world.dt
            world.cgroup_oom_kills[memcg][kill] += 1
        assert world.oom_kills is not None
        world.oom_kills[kill] += 1
        kb = int(proc.rss[kill - 1]) // 1024
        scope = "Memory cgroup out of memory" if memcg else "Out of memory"
        world.event(kill, "oom_kill", proc.entity, "kmsg", "critical",
                    f"{scope}: Killed process {proc.pid} ({proc.comm}) total-vm:{kb + 524_288}kB, "
                    f"anon-rss:{kb}kB, file-rss:0kB, shmem-rss:0kB, UID:{proc.uid} "
                    f"pgtables:{kb // 512}kB oom_score_adj:0",
                    pid=proc.pid, comm=proc.comm, anon_rss_kb=kb,
                    constraint="CONSTRAINT_MEMCG" if memcg else "CONSTRAINT_NONE",
                    cgroup="/" + proc.cgroup)
        slot = world.kill(proc, kill, _param(fault, "restart_after_s", 5.0), "killed by the OOM killer")
        if slot is None:
            break
        slot.rss = base_rss.copy()
        proc, onset = slot, int(np.argmax(slot.alive))
    if first_kill is None:
        return world.step_of(fault.onset_s + ramp * 0.25), min(end, world.steps)
    return world.step_of(fault.onset_s + ramp * 0.25), min(first_kill + world.step_of(30), world.steps)


def swap_thrash(world: World, fault: Fault, _: int) -> Window:
    prof = world.profile
    if prof.swap_bytes == 0:
        raise BadInput(f"swap_thrash needs a profile with swap; {prof.name} has none",
                       field="faults")
    proc = _process(world, f"process/{int(_param(fault, 'process', 0))}")
    others = sum(float(np.median(p.rss)) for p in world.procs if p is not proc)
    over = min(prof.swap_bytes * 0.6, prof.memory_bytes * 0.2) * min(fault.intensity, 1.5)
    target = prof.memory_bytes * 0.98 - prof.kernel_memory_bytes - others + over
    env = _env(world, fault)
    proc.rss = proc.rss + env * max(target - float(np.median(proc.rss)), 0.0)
    assert world.swap_activity is not None
    world.swap_activity = world.swap_activity + env ** 2 * fault.intensity
    return _full(world, fault)


def disk_io_saturation(world: World, fault: Fault, _: int) -> Window:
    name = fault.target.removeprefix("disk/")
    if name not in world.disk_latency:
        raise BadInput(f"profile {world.profile.name} has no {fault.target}", field="faults.target")
    env = _env(world, fault)
    latency = _param(fault, "latency_factor", 1.0 + 7.0 * fault.intensity)
    demand = _param(fault, "demand_factor", 1.0)
    world.disk_latency[name] = world.disk_latency[name] * (1.0 + (latency - 1.0) * env)
    for p in world.procs:
        if p.disk == name:
            p.read_bps = p.read_bps * (1.0 + (demand - 1.0) * env)
            p.write_bps = p.write_bps * (1.0 + (demand - 1.0) * env)
    return _full(world, fault)


def _filesystem(world: World, target: str) -> str:
    mount = target.removeprefix("fs/")
    if mount not in world.fs_extra_bytes:
        raise BadInput(f"profile {world.profile.name} has no {target}", field="faults.target")
    return mount


def filesystem_full(world: World, fault: Fault, _: int) -> Window:
    mount = _filesystem(world, fault.target)
    fs = next(f for f in world.profile.filesystems if f.mount == mount)
    room = 0.95 * fs.size_bytes - fs.used_ratio * fs.size_bytes
    fill = np.clip(_env(world, fault) * 1.02, 0, 1)
    world.fs_extra_bytes[mount] = world.fs_extra_bytes[mount] + fill * room
    return world.step_of(fault.onset_s + fault.ramp_s * 0.5), _end(world, fault)


def inode_exhaustion(world: World, fault: Fault, _: int) -> Window:
    mount = _filesystem(world, fault.target)
    fs = next(f for f in world.profile.filesystems if f.mount == mount)
    room = fs.inodes * (1.0 - fs.inodes_used_ratio)
    fill = np.clip(_env(world, fault) * 1.01, 0, 1)
    world.fs_extra_inodes[mount] = world.fs_extra_inodes[mount] + fill * room
    return world.step_of(fault.onset_s + fault.ramp_s * 0.5), _end(world, fault)


def fd_exhaustion(world: World, fault: Fault, _: int) -> Window:
    proc = _process(world, fault.target)
    base = float(np.median(proc.fds))
    proc.fds = np.minimum(proc.fds + _env(world, fault) * (proc.fd_limit - base) * 1.05,
                          proc.fd_limit)
    return world.step_of(fault.onset_s + fault.ramp_s * 0.5), _end(world, fault)


# ----------------------------------------------------------------------------- network
def _nic(world: World, target: str) -> str:
    name = target.removeprefix("nic/")
    if name not in world.nic_loss:
        raise BadInput(f"profile {world.profile.name} has no {target}", field="faults.target")
    return name


def packet_loss(world: World, fault: Fault, _: int) -> Window:
    name = _nic(world, fault.target)
    env = _env(world, fault)
    world.nic_loss[name] = world.nic_loss[name] + env * _param(fault, "loss", 0.04 * fault.intensity)
    noise = np.abs(world.rng("fault-errors", name).standard_normal(world.steps))
    world.nic_rx_errors[name] = world.nic_rx_errors[name] + env * fault.intensity * (4 + 2 * noise)
    return _full(world, fault)


def nic_link_flap(world: World, fault: Fault, _: int) -> Window:
    name = _nic(world, fault.target)
    period = world.step_of(_param(fault, "period_s", 40))
    down = world.step_of(_param(fault, "down_s", 12))
    start, end = world.step_of(fault.onset_s), _end(world, fault)
    for first in range(start, end, max(period, down + 1)):
        up_again = min(first + down, end, world.steps)
        world.nic_up[name][first:up_again] = False
        world.nic_carrier_changes[name][first] += 1
        world.event(first, "link_down", fault.target, "netlink", "error",
                    f"{name}: Link is Down", ifname=name)
        if up_again < world.steps:
            world.nic_carrier_changes[name][up_again] += 1
            world.event(up_again, "link_up", fault.target, "netlink", "info",
                        f"{name}: Link is Up - {world.profile.nics[0].speed_mbps}Mbps/Full",
                        ifname=name)
            # Senders retransmit what was lost while the link was down.
            burst = slice(up_again, min(up_again + world.step_of(6), world.steps))
            world.nic_loss[name][burst] += 0.05
    return start, end


def listen_backlog_overflow(world: World, fault: Fault, _: int) -> Window:
    port = int(_param(fault, "port", 0))
    if port not in world.listen_fill:
        raise BadInput(f"params.port {port} is not a listening port of profile "
                       f"{world.profile.name}: {sorted(world.listen_fill)}", field="faults.params")
    env = _env(world, fault)
    world.listen_fill[port] = world.listen_fill[port] + env * 0.98
    noise = np.abs(world.rng("fault-listen", port).standard_normal(world.steps))
    world.listen_overflow[port] = world.listen_overflow[port] + (env >= 0.95) * fault.intensity * (40 + 15 * noise)
    return _full(world, fault)


def noisy_neighbour(world: World, fault: Fault, _: int) -> Window:
    path = fault.target.removeprefix("cgroup/")
    members = [p for p in world.procs if p.cgroup == path and p.role != "idle"]
    if not members:
        raise BadInput(f"{fault.target} has no process to be noisy with", field="faults.target")
    env = _env(world, fault)
    resource = fault.params.get("resource", "io")
    if resource == "io":
        noisy = [p for p in members if p.disk]
        if not noisy:
            raise BadInput(f"{fault.target} has no process doing IO", field="faults.target")
        for p in noisy:
            disk = next(d for d in world.profile.disks if d.name == p.disk)
            bandwidth = disk.capacity()[1]
            p.read_bps = p.read_bps + env * bandwidth * (0.8 + 0.5 * fault.intensity) / len(noisy)
            p.write_bps = p.write_bps + env * bandwidth * 0.3 / len(noisy)
            p.cpu = p.cpu + env * 0.2
    elif resource == "cpu":
        for p in members:
            p.cpu = p.cpu + env * world.profile.cpu_count * 1.2 * fault.intensity / len(members)
    else:
        raise BadInput(f"params.resource is io or cpu, not {resource!r}", field="faults.params")
    return _full(world, fault)


# ----------------------------------------------------------------------------- GPU
def gpu_thermal_throttle(world: World, fault: Fault, _: int) -> Window:
    i = _gpu_index(world, fault.target)
    spec = world.profile.gpus
    assert spec is not None
    loaded = float(world.gpu["temp_base"][i, 0]) + 0.045 * 0.85 * spec.power_cap_watts
    rise = spec.slowdown_celsius - loaded + 4.0 + 6.0 * fault.intensity
    world.gpu["temp_offset"][i] += _env(world, fault) * rise
    return _full(world, fault)


def gpu_power_throttle(world: World, fault: Fault, _: int) -> Window:
    i = _gpu_index(world, fault.target)
    spec = world.profile.gpus
    assert spec is not None
    env = _env(world, fault)
    mode = fault.params.get("mode", "cap")
    if mode == "cap":
        cut = min(0.35 * fault.intensity, 0.6) * spec.power_cap_watts
        world.gpu["power_limit"][i] -= np.round(env * cut / 5.0) * 5.0
    elif mode == "brake":
        world.gpu["brake"][i] = np.maximum(world.gpu["brake"][i], env >= 0.5)
    else:
        raise BadInput(f"params.mode is cap or brake, not {mode!r}", field="faults.params")
    return _full(world, fault)


def _xid_event(world: World, step: int, gpu: int, xid: int, pid: int | None) -> None:
    bus = f"0000:{0x18 + 0x10 * gpu:02x}:00"
    pid_text = f"pid={pid}, " if pid is not None else ""
    world.event(step, "gpu_xid", f"gpu/{gpu}", "kmsg", "critical" if xid in (48, 79, 95, 119) else "error",
                f"NVRM: Xid (PCI:{bus}): {xid}, {pid_text}{_XID_TEXT.get(xid, 'Xid error')}",
                xid=xid, xid_class=XID_CLASSES.get(xid, "unknown"), pci_bus=bus)


def gpu_xid(world: World, fault: Fault, _: int) -> Window:
    i = _gpu_index(world, fault.target)
    xid = int(_param(fault, "xid", 79))
    if xid not in XID_CLASSES:
        raise BadInput(f"params.xid {xid} is not a known Xid; known: {sorted(XID_CLASSES)}",
                       field="faults.params")
    step = world.step_of(fault.onset_s)
    rank = _rank(world, i)
    _xid_event(world, step, i, xid, rank.pid if rank else None)
    klass = XID_CLASSES[xid]
    if klass == "device_lost":
        world.gpu["present"][i, step:] = False
    if klass in ("memory_dbe", "memory_uncontained", "memory_contained"):
        world.gpu["ecc_uncorrected"][i, step:] += 1
    if klass.startswith("memory_row_remap"):
        world.gpu["remap_uncorrectable"][i, step:] += 1
        world.gpu["remap_pending"][i, step:] = 1
    if klass == "memory_sbe_rate":
        world.gpu["ecc_corrected"][i, step:] += np.cumsum(np.full(world.steps - step, 2.0))
    if klass == "nvlink":
        assert world.gpu_nvlink_errors is not None
        world.gpu_nvlink_errors[i, 0, 2, step:] += 50
    kills = klass not in ("memory_sbe_rate", "memory_row_remap")
    if rank is not None and kills:
        world.kill(rank, step, None, f"CUDA error after Xid {xid}")
    return step, world.steps


def gpu_ecc_dbe(world: World, fault: Fault, _: int) -> Window:
    i = _gpu_index(world, fault.target)
    env = _env(world, fault)
    # Correctable errors climb first: the page is going bad before the double-bit error.
    world.gpu["ecc_corrected"][i] += np.cumsum(env * 0.4 * fault.intensity * world.dt).round()
    step = world.step_of(fault.onset_s + fault.ramp_s)
    if step >= world.steps:
        raise BadInput("the double-bit error falls after the end", field="faults")
    count = max(1, round(fault.intensity))
    world.gpu["ecc_uncorrected"][i, step:] += count
    world.gpu["remap_uncorrectable"][i, step:] += count
    world.gpu["remap_pending"][i, step:] = 1  # the remap takes effect at the next GPU reset
    rank = _rank(world, i)
    world.event(step, "gpu_ecc_dbe", fault.target, "nvml", "critical",
                f"GPU {i}: {count} uncorrectable (double-bit) ECC error(s) in device memory",
                count=count)
    _xid_event(world, step, i, 48, rank.pid if rank else None)
    _xid_event(world, min(step + 1, world.steps - 1), i, 63, None)
    if rank is not None:
        world.kill(rank, step, None, "CUDA error: uncorrectable ECC error encountered")
    return step, world.steps


def nvlink_degradation(world: World, fault: Fault, _: int) -> Window:
    i = _gpu_index(world, fault.target)
    assert world.gpu_nvlink_errors is not None and world.job_speed is not None
    links = [int(x) for x in fault.params.get("links", [0, 1])]
    env = _env(world, fault)
    for link in links:
        for k, kind in enumerate(NVLINK_ERROR_TYPES):
            rate = {"crc_flit": 6.0, "crc_data": 1.0, "replay": 4.0, "recovery": 0.3}[kind]
            world.gpu_nvlink_errors[i, link, k] += np.floor(np.cumsum(env * rate * fault.intensity * world.dt))
    step = world.step_of(fault.onset_s)
    world.event(step, "nvlink_error", fault.target, "nvml", "warning",
                f"GPU {i}: NVLink CRC and replay errors on links {links}", links=",".join(map(str, links)))
    down = world.step_of(fault.onset_s + fault.ramp_s)
    if down < _end(world, fault):
        world.gpu["nvlink_active"][i, down:_end(world, fault)] -= len(links)
        _xid_event(world, down, i, 74, None)
    world.job_speed = world.job_speed * (1.0 - 0.3 * env)
    return _full(world, fault)


def pcie_degradation(world: World, fault: Fault, _: int) -> Window:
    i = _gpu_index(world, fault.target)
    step, end = _full(world, fault)
    width = int(_param(fault, "width", 4))
    generation = int(_param(fault, "generation", world.gpu["pcie_gen"][i, 0]))
    world.gpu["pcie_width"][i, step:end] = width
    world.gpu["pcie_gen"][i, step:end] = generation
    every = world.step_of(20)
    for s in range(world.step_of(fault.onset_s), end, max(every, 1)):
        world.event(s, "pcie_aer", fault.target, "kmsg", "warning",
                    f"pcieport 0000:{0x17 + 0x10 * i:02x}:01.0: AER: Corrected error received: "
                    "Physical Layer, type=Receiver Error", severity_class="corrected")
    return step, end


def gpu_memory_exhaustion(world: World, fault: Fault, _: int) -> Window:
    i = _gpu_index(world, fault.target)
    env = _env(world, fault)
    base = float(np.median(world.gpu["mem_ratio"][i]))
    world.gpu["mem_ratio"][i] += env * (0.997 - base)
    step = world.step_of(fault.onset_s + fault.ramp_s)
    rank = _rank(world, i)
    if rank is not None and step < _end(world, fault):
        world.kill(rank, step, fault.params.get("restart_after_s"),
                   "torch.OutOfMemoryError: CUDA out of memory")
    return world.step_of(fault.onset_s + fault.ramp_s * 0.5), _end(world, fault)


def collective_straggler(world: World, fault: Fault, _: int) -> Window:
    i = _gpu_index(world, fault.target)
    env = _env(world, fault)
    world.gpu["busy"][i] = world.gpu["busy"][i] * (1.0 - env * min(0.9 * fault.intensity, 0.95))
    rank = _rank(world, i)
    if rank is not None:  # the rank is stuck on the host side (data loading), one core busy
        rank.cpu = rank.cpu + env * 1.0
    return _full(world, fault)


def rdma_link_errors(world: World, fault: Fault, _: int) -> Window:
    ports = world.profile.ib_ports
    j = next((k for k, p in enumerate(ports) if p.entity == fault.target), None)
    if j is None:
        raise BadInput(f"profile {world.profile.name} has no {fault.target}", field="faults.target")
    assert world.ib_errors is not None and world.job_speed is not None
    env = _env(world, fault)
    for k, counter in enumerate(IB_ERROR_COUNTERS):
        rate = {"symbol_error": 25.0, "link_error_recovery": 0.15, "link_downed": 0.0,
                "port_rcv_errors": 6.0, "port_xmit_discards": 2.0}[counter]
        world.ib_errors[j, k] += np.floor(np.cumsum(env * rate * fault.intensity * world.dt))
    world.ib["rate"][j] = world.ib["rate"][j] * (1.0 - 0.6 * env)
    world.job_speed = world.job_speed * (1.0 - 0.2 * env)
    return _full(world, fault)


INJECTORS: dict[FaultClass, Injector] = {
    FaultClass.CPU_SATURATION: cpu_saturation,
    FaultClass.CGROUP_CPU_THROTTLING: cgroup_cpu_throttling,
    FaultClass.MEMORY_LEAK_OOM: memory_leak_oom,
    FaultClass.SWAP_THRASH: swap_thrash,
    FaultClass.DISK_IO_SATURATION: disk_io_saturation,
    FaultClass.FILESYSTEM_FULL: filesystem_full,
    FaultClass.INODE_EXHAUSTION: inode_exhaustion,
    FaultClass.FD_EXHAUSTION: fd_exhaustion,
    FaultClass.PACKET_LOSS: packet_loss,
    FaultClass.NIC_LINK_FLAP: nic_link_flap,
    FaultClass.LISTEN_BACKLOG_OVERFLOW: listen_backlog_overflow,
    FaultClass.NOISY_NEIGHBOUR: noisy_neighbour,
    FaultClass.GPU_THERMAL_THROTTLE: gpu_thermal_throttle,
    FaultClass.GPU_POWER_THROTTLE: gpu_power_throttle,
    FaultClass.GPU_XID: gpu_xid,
    FaultClass.GPU_ECC_DBE: gpu_ecc_dbe,
    FaultClass.NVLINK_DEGRADATION: nvlink_degradation,
    FaultClass.PCIE_DEGRADATION: pcie_degradation,
    FaultClass.GPU_MEMORY_EXHAUSTION: gpu_memory_exhaustion,
    FaultClass.COLLECTIVE_STRAGGLER: collective_straggler,
    FaultClass.RDMA_LINK_ERRORS: rdma_link_errors,
}
"""One injector per fault class (a test checks none is missing)."""
