"""``cgroup-throttle``: a cgroup with a tight CFS quota and more CPU-bound work than it allows."""

from __future__ import annotations

from pydantic import Field

from sreagent.lab.live._injector import Injector, InjectorOptions, cgroup_dirs, cpu_quota_settings
from sreagent.lab.live._resources import Resource, Worker, worker_command


class CgroupThrottleOptions(InjectorOptions):
    quota_cores: float = Field(0.2, gt=0.0, le=64.0)
    """The cgroup's CPU limit (cfs_quota_us / cfs_period_us)."""
    threads: int = Field(1, ge=1, le=64)
    """Busy threads inside; each wants a whole CPU, so anything above the quota is throttled."""


class CgroupThrottle(Injector):
    name = "cgroup-throttle"
    summary = "a cgroup capped at a fraction of a CPU with a spinning process inside"
    fault_class = "cgroup_cpu_throttling"
    observe = "nr_throttled and throttled_time in the cgroup's cpu.stat grow every period"
    Options = CgroupThrottleOptions

    def _build(self) -> list[Resource]:
        assert isinstance(self.options, CgroupThrottleOptions)
        mounts = self.host.cgroup_mounts()
        dirs = cgroup_dirs(
            mounts, self.run, cpu_quota_settings(mounts, self.options.quota_cores), "cpuacct"
        )
        cmd = worker_command(
            "spin", self.run, seconds=self.duration_s, threads=self.options.threads
        )
        return [*dirs, Worker(self.run, "spinner", cmd, cgroups=[d.path for d in dirs])]

    def _entity(self) -> str:
        return f"cgroup/{self.run}"

    def cgroup_path(self) -> str:
        """The cgroup relative to each hierarchy root (the part after ``cgroup/``)."""
        return self.run

    def related_entities(self) -> list[str]:
        return [f"process/{w.pid}" for w in self.workers() if w.popen is not None]
