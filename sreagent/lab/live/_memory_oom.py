"""``memory-oom``: a memory cgroup with a limit and a process leaking into it until the kernel's
memcg OOM killer kills it."""

from __future__ import annotations

from pydantic import Field

from sreagent.lab.live._injector import (
    Injector,
    InjectorOptions,
    cgroup_dirs,
    memory_limit_settings,
)
from sreagent.lab.live._resources import Resource, Worker, worker_command


class MemoryOomOptions(InjectorOptions):
    limit_mib: int = Field(128, ge=16, le=65536)
    leak_mib_per_s: float = Field(32.0, gt=0.0, le=4096.0)
    """How fast the leak grows; limit/rate is about when the OOM kill comes."""
    chunk_mib: int = Field(4, ge=1, le=256)


class MemoryOom(Injector):
    name = "memory-oom"
    summary = "a leaking process in a memory-limited cgroup, OOM-killed by the kernel"
    fault_class = "memory_leak_oom"
    observe = (
        "memory.failcnt > 0 and oom_kill in memory.oom_control of the cgroup; oom_kill in "
        "/proc/vmstat grows; /dev/kmsg logs `Memory cgroup out of memory: Killed process <pid>`"
    )
    Options = MemoryOomOptions

    def _build(self) -> list[Resource]:
        o = self.options
        assert isinstance(o, MemoryOomOptions)
        mounts = self.host.cgroup_mounts()
        dirs = cgroup_dirs(mounts, self.run, memory_limit_settings(mounts, o.limit_mib << 20))
        cmd = worker_command(
            "leak",
            self.run,
            seconds=self.duration_s,
            mib_per_s=o.leak_mib_per_s,
            chunk_mib=o.chunk_mib,
        )
        return [*dirs, Worker(self.run, "leaker", cmd, cgroups=[d.path for d in dirs])]

    def _entity(self) -> str:
        return f"process/{self.workers()[0].pid}"

    def _planned_entity(self) -> str:
        return "process/<pid of the leaker>"

    def cgroup_entity(self) -> str:
        return f"cgroup/{self.run}"

    def related_entities(self) -> list[str]:
        return [self.cgroup_entity()]

    def oom_killed(self) -> bool:
        """Whether the leaker died of SIGKILL (the OOM killer's signal)."""
        return self.workers()[0].returncode() == -9
