"""``cgroup-throttle``: a cgroup with a tight CFS quota and more CPU-bound work than it allows."""

from __future__ import annotations

from pydantic import Field

from sreagent.lab.live._injector import Injector, InjectorOptions, cgroup_dirs, cpu_quota_settings
from sreagent.lab.live._resources import Resource, Worker, worker_command

DEMAND_PERIOD_MS = 100.0
"""The steady service's period (``demand_cores``): the CFS period, so its demand per period is
what the quota is compared with."""


class CgroupThrottleOptions(InjectorOptions):
    quota_cores: float = Field(0.2, gt=0.0, le=64.0)
    """The cgroup's CPU limit (cfs_quota_us / cfs_period_us)."""
    threads: int = Field(1, ge=1, le=64)
    """Busy threads inside; each wants a whole CPU, so anything above the quota is throttled."""
    demand_cores: float | None = Field(None, gt=0.0, le=1.0)
    """Instead of spinning threads: one steady service needing this much CPU (busy
    ``demand_cores * 100`` ms of every 100 ms). Above ``quota_cores`` it is throttled every
    period; a quota raised above the demand ends the throttling (the approved remediation's
    measurable effect)."""
    unit: bool = False
    """Name the cgroup like a systemd scope, ``sreagent-lab-<tag>.scope``: a remediation that
    acts on a unit (``raise_cgroup_cpu_quota``) can then name it."""


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
            mounts, self.cgroup_path(), cpu_quota_settings(mounts, self.options.quota_cores),
            "cpuacct"
        )
        if self.options.demand_cores is not None:
            busy_ms = self.options.demand_cores * DEMAND_PERIOD_MS
            cmd = worker_command("steady", self.run, seconds=self.duration_s, busy_ms=busy_ms,
                                 period_ms=DEMAND_PERIOD_MS)
        else:
            cmd = worker_command(
                "spin", self.run, seconds=self.duration_s, threads=self.options.threads
            )
        return [*dirs, Worker(self.run, "spinner", cmd, cgroups=[d.path for d in dirs])]

    def _entity(self) -> str:
        return f"cgroup/{self.cgroup_path()}"

    def cgroup_path(self) -> str:
        """The cgroup relative to each hierarchy root (the part after ``cgroup/``)."""
        assert isinstance(self.options, CgroupThrottleOptions)
        return f"{self.run}.scope" if self.options.unit else self.run

    def related_entities(self) -> list[str]:
        return [f"process/{w.pid}" for w in self.workers() if w.popen is not None]
