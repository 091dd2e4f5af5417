"""The simulated host: driver arrays (one value per step) that faults edit and metrics derive from.

Faults change *drivers* (a process's CPU demand, a disk's service time, a NIC's loss rate, a
GPU's temperature), never metrics directly; :mod:`sreagent.scenarios._derive` then computes
every metric from the drivers, so a fault propagates to everything a real one would move (a
runaway process raises host CPU, the run queue, CPU pressure and the load average together).

All randomness comes from :func:`stream`, a numpy Generator seeded from the scenario seed and
a stable name, so adding a fault does not reshuffle the baseline noise of anything else.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from sreagent.scenarios._profiles import HostProfile, ProcessSpec
from sreagent.scenarios._schema import ScenarioDefinition

_NOISE_KERNEL = 0.7 ** np.arange(6)
_NOISE_KERNEL /= np.sqrt((_NOISE_KERNEL**2).sum())


def stream(seed: int, *names: str | int) -> np.random.Generator:
    """A seeded Generator for one named component (crc32 keeps names stable across runs)."""
    keys = [seed] + [zlib.crc32(str(n).encode()) for n in names]
    return np.random.default_rng(keys)


def smooth_noise(rng: np.random.Generator, steps: int, rows: int | None = None) -> np.ndarray:
    """Unit-variance noise with a short memory (a moving average of white noise)."""
    k = len(_NOISE_KERNEL)
    shape = (steps + k - 1,) if rows is None else (rows, steps + k - 1)
    white = rng.standard_normal(shape)
    out = np.zeros((*shape[:-1], steps))
    for i, w in enumerate(_NOISE_KERNEL):
        out += w * white[..., i : i + steps]
    return out


@dataclass
class Proc:
    """One process slot: a pid from start to exit (a restart is a new slot with a new pid)."""

    pid: int
    ppid: int
    comm: str
    cmdline: str
    uid: int
    cgroup: str
    role: str
    threads: int
    disk: str | None
    fd_limit: int
    listen_port: int | None
    gpu: int | None
    tracked: bool
    """Whether per-process metrics (``process/<pid>``) are emitted, not only the process row."""
    cpu: np.ndarray
    """CPU demand in cores (before cgroup quotas and host contention)."""
    rss: np.ndarray
    fds: np.ndarray
    read_bps: np.ndarray
    write_bps: np.ndarray
    alive: np.ndarray
    uptime_s: float = 0.0
    """CPU seconds it had accumulated before the first step (0 for a process that starts later)."""
    stuck_in_io: np.ndarray | None = None

    @property
    def entity(self) -> str:
        return f"process/{self.pid}"


@dataclass
class World:
    """Every driver of one simulated host over the scenario's steps."""

    definition: ScenarioDefinition
    profile: HostProfile
    steps: int
    dt: float
    t: np.ndarray
    """Seconds since the first sample."""
    load: np.ndarray
    """Service load factor (diurnal swing times the scenario's load)."""
    noise: float
    procs: list[Proc] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)
    next_pid: int = 30_000
    # disks: latency multiplier and IO demand not attributed to a listed process
    disk_latency: dict[str, np.ndarray] = field(default_factory=dict)
    disk_errors: dict[str, np.ndarray] = field(default_factory=dict)
    # filesystems: bytes and inodes written on top of the baseline
    fs_extra_bytes: dict[str, np.ndarray] = field(default_factory=dict)
    fs_extra_inodes: dict[str, np.ndarray] = field(default_factory=dict)
    # NICs
    nic_loss: dict[str, np.ndarray] = field(default_factory=dict)
    nic_up: dict[str, np.ndarray] = field(default_factory=dict)
    nic_carrier_changes: dict[str, np.ndarray] = field(default_factory=dict)
    nic_rx_errors: dict[str, np.ndarray] = field(default_factory=dict)
    # listeners: accept-queue fill (0..1) and overflow rate per port
    listen_fill: dict[int, np.ndarray] = field(default_factory=dict)
    listen_overflow: dict[int, np.ndarray] = field(default_factory=dict)
    # memory
    swap_activity: np.ndarray | None = None
    process_exits: np.ndarray | None = None
    """Processes that exited in each step (kills, crashes, restarts)."""
    execs_extra: np.ndarray | float = 0.0
    """Programs executed per second beyond the baseline (cron jobs)."""
    oom_kills: np.ndarray | None = None
    cgroup_oom_kills: dict[str, np.ndarray] = field(default_factory=dict)
    cgroup_failcnt: dict[str, np.ndarray] = field(default_factory=dict)
    cgroup_counter_resets: dict[str, list[int]] = field(default_factory=dict)
    # GPUs (arrays shaped (count, steps)) and the training job's speed
    gpu: dict[str, np.ndarray] = field(default_factory=dict)
    gpu_reasons: dict[str, np.ndarray] = field(default_factory=dict)
    gpu_nvlink_errors: np.ndarray | None = None
    """(gpu, link, type, steps) cumulative NVLink error counts."""
    job_speed: np.ndarray | None = None
    """Training throughput relative to normal (1.0); every rank slows to the slowest."""
    ib: dict[str, np.ndarray] = field(default_factory=dict)
    ib_errors: np.ndarray | None = None
    """(port, counter, steps) cumulative IB port error counts."""

    # ------------------------------------------------------------------ helpers
    def rng(self, *names: str | int) -> np.random.Generator:
        return stream(self.definition.seed, *names)

    def step_of(self, seconds: float) -> int:
        """The step index at ``seconds`` after the start (clipped into the scenario)."""
        return int(min(max(round(seconds / self.dt), 0), self.steps))

    def envelope(self, onset_s: int, ramp_s: int, duration_s: int | None) -> np.ndarray:
        """0 before onset, rising linearly to 1 over the ramp, 1 until the fault clears."""
        end = onset_s + duration_s if duration_s is not None else float("inf")
        ramp = max(ramp_s, self.dt)
        env = np.clip((self.t - onset_s + self.dt) / ramp, 0.0, 1.0)
        env[self.t < onset_s] = 0.0
        env[self.t >= end] = 0.0
        return env

    def proc(self, pid: int) -> Proc:
        for p in self.procs:
            if p.pid == pid:
                return p
        raise KeyError(pid)

    def event(self, step: int, kind: str, entity: str, source: str, severity: str,
              message: str, **attributes: object) -> None:
        """Record an event seen during ``step`` (its batch is the one stamped at ``step``)."""
        if 0 <= step < self.steps:
            self.events.append({"step": step, "kind": kind, "entity": entity, "source": source,
                                "severity": severity, "message": message,
                                "attributes": {k: str(v) for k, v in sorted(attributes.items())}})

    def new_slot(self, like: Proc, start: int) -> Proc:
        """A restarted copy of ``like`` from step ``start`` with a new pid and fresh counters."""
        self.next_pid += 7
        alive = np.zeros(self.steps, bool)
        alive[start:] = True
        slot = Proc(
            pid=self.next_pid, ppid=like.ppid, comm=like.comm, cmdline=like.cmdline,
            uid=like.uid, cgroup=like.cgroup, role=like.role, threads=like.threads,
            disk=like.disk, fd_limit=like.fd_limit, listen_port=like.listen_port, gpu=like.gpu,
            tracked=like.tracked, cpu=like.cpu.copy(), rss=like.rss.copy(), fds=like.fds.copy(),
            read_bps=like.read_bps.copy(), write_bps=like.write_bps.copy(), alive=alive,
        )
        self.procs.append(slot)
        return slot

    def kill(self, proc: Proc, step: int, restart_after_s: float | None,
             reason: str) -> Proc | None:
        """End ``proc`` at ``step``; optionally let its supervisor start it again."""
        proc.alive[step:] = False
        if self.process_exits is not None and step < self.steps:
            self.process_exits[step] += 1
        self.event(step, "process_exit", proc.entity, "ebpf", "warning",
                   f"{proc.comm}[{proc.pid}] exited: {reason}", pid=proc.pid, comm=proc.comm)
        if restart_after_s is None:
            return None
        start = step + max(1, self.step_of(restart_after_s))
        if start >= self.steps:
            return None
        slot = self.new_slot(proc, start)
        self.event(start, "process_restart", slot.entity, "ebpf", "info",
                   f"{slot.comm} started again as pid {slot.pid} after pid {proc.pid} exited",
                   pid=slot.pid, previous_pid=proc.pid, comm=slot.comm)
        return slot


def _proc_from_spec(world: World, spec: ProcessSpec, *, tracked: bool) -> Proc:
    n = world.steps
    rng = world.rng("process", spec.pid)
    noise = world.noise
    wiggle = 1.0 + noise * smooth_noise(rng, n)
    scale = world.load if spec.role in ("service", "trainer") else np.ones(n)
    if spec.role == "trainer":
        scale = np.ones(n)
    cpu = np.clip(spec.cpu_cores * scale * wiggle, 0.0, None)
    rss = spec.rss_bytes * (1.0 + 0.004 * smooth_noise(rng, n))
    io_wiggle = np.clip(1.0 + 2 * noise * smooth_noise(rng, n), 0.05, None)
    fds = spec.fds + np.round(np.clip(0.02 * spec.fds * smooth_noise(rng, n), -spec.fds, None))
    return Proc(
        pid=spec.pid, ppid=spec.ppid, comm=spec.comm, cmdline=spec.cmdline or spec.comm,
        uid=spec.uid, cgroup=spec.cgroup, role=spec.role, threads=spec.threads, disk=spec.disk,
        fd_limit=spec.fd_limit, listen_port=spec.listen_port, gpu=spec.gpu, tracked=tracked,
        cpu=cpu, rss=rss, fds=fds, read_bps=spec.read_bytes_per_second * scale * io_wiggle,
        write_bps=spec.write_bytes_per_second * scale * io_wiggle, alive=np.ones(n, bool),
        uptime_s=float(rng.integers(3_600, 30 * 86_400)) * max(spec.cpu_cores, 0.001),
    )


_FILLER_COMMS = ("kworker/0:1", "ksoftirqd/0", "rcu_sched", "migration/0", "kthreadd",
                 "systemd-journal", "systemd-udevd", "dbus-daemon", "rsyslogd", "chronyd",
                 "agetty", "polkitd", "irqbalance", "containerd-shim", "multipathd",
                 "systemd-logind", "atd", "unattended-upgr", "snmpd", "lldpd")


def build_world(definition: ScenarioDefinition, profile: HostProfile) -> World:
    """The baseline world: drivers before any burst or fault."""
    steps, dt = definition.steps, float(definition.resolution_s)
    t = np.arange(steps, dtype=np.float64) * dt
    seconds_of_day = (definition.start_ns // 10**9 + t) % 86_400
    base = definition.baseline
    # Peak at 15:00 UTC, trough at 03:00 UTC.
    load = base.load * (1.0 + base.diurnal_amplitude
                        * np.sin(2 * np.pi * (seconds_of_day / 3_600 - 9) / 24))
    world = World(definition=definition, profile=profile, steps=steps, dt=dt, t=t, load=load,
                  noise=base.noise)
    world.procs = [_proc_from_spec(world, spec, tracked=True) for spec in profile.processes]
    rng = world.rng("filler")
    used = {p.pid for p in profile.processes}
    pid = 1
    for i in range(profile.filler_processes):
        comm = _FILLER_COMMS[i % len(_FILLER_COMMS)]
        pid += 3 if i < 60 else 11
        while pid in used:
            pid += 1
        used.add(pid)
        spec = ProcessSpec(pid=pid, comm=comm[:15],
                           cmdline="" if "/" in comm else f"/usr/sbin/{comm}",
                           role="idle", cpu_cores=float(rng.uniform(0.0, 0.004)),
                           rss_bytes=int(rng.integers(0, 40)) * 2**20,
                           fds=int(rng.integers(0, 40)), ppid=2 if "/" in comm else 1)
        world.procs.append(_proc_from_spec(world, spec, tracked=False))
    world.next_pid = max(p.pid for p in world.procs) + 1_000
    for disk in profile.disks:
        world.disk_latency[disk.name] = np.ones(steps)
        world.disk_errors[disk.name] = np.zeros(steps)
    for fs in profile.filesystems:
        world.fs_extra_bytes[fs.mount] = np.zeros(steps)
        world.fs_extra_inodes[fs.mount] = np.zeros(steps)
    for nic in profile.nics:
        world.nic_loss[nic.name] = np.zeros(steps)
        world.nic_up[nic.name] = np.ones(steps, bool)
        world.nic_carrier_changes[nic.name] = np.zeros(steps)
        world.nic_rx_errors[nic.name] = np.zeros(steps)
    for port in sorted({p.listen_port for p in profile.processes if p.listen_port}):
        world.listen_fill[port] = np.zeros(steps)
        world.listen_overflow[port] = np.zeros(steps)
    world.swap_activity = np.zeros(steps)
    world.process_exits = np.zeros(steps)
    world.oom_kills = np.zeros(steps)
    for cg in profile.cgroups:
        world.cgroup_oom_kills[cg.path] = np.zeros(steps)
        world.cgroup_failcnt[cg.path] = np.zeros(steps)
    if profile.gpus:
        _build_gpus(world)
    return world


def _build_gpus(world: World) -> None:
    spec = world.profile.gpus
    assert spec is not None
    n, steps = spec.count, world.steps
    rng = world.rng("gpu")
    ones = np.ones((n, steps))
    world.gpu = {
        "busy": ones.copy(),  # 1 while the rank computes
        "spin": np.zeros((n, steps)),  # 1 while the rank waits in a collective
        "temp_offset": np.zeros((n, steps)),
        "power_limit": spec.power_cap_watts * ones,
        "mem_ratio": 0.78 + 0.01 * rng.standard_normal((n, 1)) + 0.002 * smooth_noise(rng, steps, n),
        "pcie_width": spec.pcie_width * ones,
        "pcie_gen": spec.pcie_generation * ones,
        "nvlink_active": spec.nvlink_links * ones,
        "ecc_corrected": np.repeat(rng.integers(0, 30, (n, 1)).astype(float), steps, axis=1),
        "ecc_uncorrected": np.zeros((n, steps)),
        "remap_correctable": np.zeros((n, steps)),
        "remap_uncorrectable": np.zeros((n, steps)),
        "remap_pending": np.zeros((n, steps)),
        "present": np.ones((n, steps), bool),
        "brake": np.zeros((n, steps)),
        "noise": smooth_noise(rng, steps, n),
        "temp_base": 38.0 + 4.0 * rng.random((n, 1)) * ones,
    }
    links, types = spec.nvlink_links, len(NVLINK_ERROR_TYPES)
    base_errors = rng.integers(0, 4, (n, links, types, 1)).astype(float)
    world.gpu_nvlink_errors = np.repeat(base_errors, steps, axis=3)
    world.job_speed = np.ones(steps)
    ports = world.profile.ib_ports
    world.ib = {"up": np.ones((len(ports), steps)), "rate": np.ones((len(ports), steps))}
    world.ib_errors = np.repeat(
        rng.integers(0, 3, (len(ports), len(IB_ERROR_COUNTERS), 1)).astype(float), steps, axis=2
    )


NVLINK_ERROR_TYPES = ("crc_flit", "crc_data", "replay", "recovery")
"""``type`` label values of ``gpu_nvlink_errors_total`` (NVML's NVLink error counters)."""
IB_ERROR_COUNTERS = ("symbol_error", "link_error_recovery", "link_downed", "port_rcv_errors",
                     "port_xmit_discards")
"""The IB port error counters faults drive (sysfs ``counters/`` names; the collector's list in
:mod:`sreagent.collector._ib` has more, which the lab reports as zero)."""
