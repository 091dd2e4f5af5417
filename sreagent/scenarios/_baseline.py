"""Benign, recurring work and planned restarts: what a healthy host does that is not an incident."""

from __future__ import annotations

import numpy as np

from sreagent.errors import BadInput
from sreagent.scenarios._schema import Burst
from sreagent.scenarios._world import World


def burst_mask(world: World, burst: Burst) -> np.ndarray:
    """1.0 inside each occurrence of a recurring burst (with a short ramp), else 0.0."""
    phase = (world.t - burst.offset_s) % burst.every_s
    active = (world.t >= burst.offset_s) & (phase < burst.duration_s)
    # A few seconds of ramp up and down keep bursts from looking like step faults.
    edge = np.minimum(phase + world.dt, burst.duration_s - phase) / 5.0
    return np.where(active, np.clip(edge, 0.2, 1.0), 0.0)


def apply_bursts(world: World) -> None:
    for burst in world.definition.baseline.bursts:
        mask = burst_mask(world, burst) * burst.intensity
        if burst.kind in ("cron", "logrotate"):
            procs = [p for p in world.procs if p.role == "cron"]
            if not procs:
                raise BadInput(f"a {burst.kind} burst needs a process with role cron in the "
                               "profile", field="baseline.bursts")
            # A cron run forks a shell pipeline: a few dozen execs.
            world.execs_extra = world.execs_extra + mask * 30.0
            for p in procs:
                p.cpu = p.cpu + mask * (0.9 if burst.kind == "cron" else 1.0)
                if burst.kind == "logrotate":
                    p.write_bps = p.write_bps + mask * 40e6
                    p.read_bps = p.read_bps + mask * 120e6
                else:
                    p.read_bps = p.read_bps + mask * 8e6
        elif burst.kind == "backup":
            procs = [p for p in world.procs if p.role == "backup"]
            if not procs:
                raise BadInput("a backup burst needs a process with role backup in the profile",
                               field="baseline.bursts")
            for p in procs:
                p.cpu = p.cpu + mask * 0.35
                disk = next(d for d in world.profile.disks if d.name == p.disk)
                bandwidth = disk.capacity()[1]
                p.read_bps = p.read_bps + mask * 0.35 * bandwidth
                p.write_bps = p.write_bps + mask * 0.05 * bandwidth
        elif burst.kind == "checkpoint":
            ranks = [p for p in world.procs if p.role == "trainer"]
            if not ranks or not world.gpu:
                raise BadInput("a checkpoint burst needs training ranks and GPUs in the profile",
                               field="baseline.bursts")
            for p in ranks:
                p.write_bps = p.write_bps + mask * 1.2e9 / len(ranks)
                p.cpu = p.cpu + mask * 0.6
            # Synchronous checkpoint: the GPUs wait while the ranks write.
            world.gpu["busy"] = world.gpu["busy"] * (1.0 - 0.75 * np.clip(mask, 0, 1))


def apply_restarts(world: World) -> None:
    """Planned restarts: a new pid, process counters from zero; a pod's cgroup counters reset."""
    for restart in world.definition.baseline.restarts:
        step = world.step_of(restart.at_s)
        if restart.target.startswith("process/"):
            pid = int(restart.target.removeprefix("process/"))
            targets = [world.proc(pid)]
        elif restart.target.startswith("cgroup/"):
            path = restart.target.removeprefix("cgroup/")
            targets = [p for p in world.procs if p.cgroup == path and p.alive[step]]
            world.cgroup_counter_resets.setdefault(path, []).append(step)
        else:
            raise BadInput("a restart targets process/<pid> or cgroup/<path>",
                           field="baseline.restarts")
        for proc in targets:
            proc.alive[step:] = False
            if world.process_exits is not None:
                world.process_exits[step] += 1
            world.event(step, "process_exit", proc.entity, "ebpf", "info",
                        f"{proc.comm}[{proc.pid}] exited: planned restart", pid=proc.pid,
                        comm=proc.comm)
            slot = world.new_slot(proc, min(step + 2, world.steps - 1))
            world.event(min(step + 2, world.steps - 1), "process_restart", slot.entity, "ebpf",
                        "info", f"{slot.comm} started again as pid {slot.pid}", pid=slot.pid,
                        previous_pid=proc.pid, comm=slot.comm)
