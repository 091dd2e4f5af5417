"""``noisy-neighbour``: two sibling cgroups sharing one CPU quota; the aggressor's hog takes the
shared budget from the victim's steady service, whose CPU pressure rises."""

from __future__ import annotations

from pydantic import Field

from sreagent.lab.live._injector import Injector, InjectorOptions, cgroup_dirs, cpu_quota_settings
from sreagent.lab.live._resources import CgroupDir, Resource, Worker, worker_command


class NoisyNeighbourOptions(InjectorOptions):
    shared_cores: float = Field(1.0, gt=0.0, le=64.0)
    """The parent cgroup's CPU quota, shared by both neighbours."""
    aggressor_threads: int = Field(2, ge=1, le=64)
    aggressor_weight: int = Field(8192, ge=2, le=262144)
    """v1 cpu.shares of the aggressor (the victim keeps the default 1024)."""
    victim_busy_ms: float = Field(20.0, gt=0.0)
    victim_period_ms: float = Field(50.0, gt=0.0)
    """The victim wants busy/period of a CPU (0.4 by default), steadily."""


class NoisyNeighbour(Injector):
    name = "noisy-neighbour"
    summary = "an aggressor cgroup starving a sibling's steady workload of a shared CPU quota"
    fault_class = "noisy_neighbour"
    observe = (
        "the aggressor's cpuacct.usage grows several times faster than the victim's; the "
        "victim's cgroup2 cpu.pressure (some total) grows; on an otherwise idle host the parent's nr_throttled grows"
    )
    Options = NoisyNeighbourOptions

    def _build(self) -> list[Resource]:
        o = self.options
        assert isinstance(o, NoisyNeighbourOptions)
        mounts = self.host.cgroup_mounts()
        quota = cpu_quota_settings(mounts, o.shared_cores)
        parents = cgroup_dirs(mounts, self.run, quota, "cpuacct")
        aggressor: list[CgroupDir] = []
        victim: list[CgroupDir] = []
        for parent in parents:
            weighted = parent.root == quota[0] and "cpu" in mounts.v1
            aggressor.append(
                CgroupDir(
                    parent.root,
                    f"{self.run}/aggressor",
                    [("cpu.shares", str(o.aggressor_weight))] if weighted else [],
                )
            )
            victim.append(CgroupDir(parent.root, f"{self.run}/victim"))
        hog = worker_command("spin", self.run, seconds=self.duration_s, threads=o.aggressor_threads)
        service = worker_command(
            "steady",
            self.run,
            seconds=self.duration_s,
            busy_ms=o.victim_busy_ms,
            period_ms=o.victim_period_ms,
        )
        return [
            *parents,
            *aggressor,
            *victim,
            Worker(self.run, "victim", service, cgroups=[d.path for d in victim]),
            Worker(self.run, "aggressor", hog, cgroups=[d.path for d in aggressor]),
        ]

    def _entity(self) -> str:
        return f"cgroup/{self.run}/aggressor"

    def victim_entity(self) -> str:
        return f"cgroup/{self.run}/victim"

    def related_entities(self) -> list[str]:
        return [self.victim_entity(), *super().related_entities()]
