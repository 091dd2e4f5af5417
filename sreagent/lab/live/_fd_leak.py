"""``fd-leak``: a process whose RLIMIT_NOFILE is lowered, opening files until it nearly hits it."""

from __future__ import annotations

from pydantic import Field

from sreagent.lab.live._injector import Injector, InjectorOptions
from sreagent.lab.live._names import run_name
from sreagent.lab.live._resources import Resource, TempDir, Worker, worker_command


class FdLeakOptions(InjectorOptions):
    limit: int = Field(4096, ge=64, le=1 << 20)
    """The worker's RLIMIT_NOFILE (soft and hard)."""
    fill: float = Field(0.98, gt=0.0, le=1.0)
    """The share of the limit it opens."""
    fds_per_s: float = Field(2000.0, gt=0.0)
    """How fast it leaks, so the rise is visible before the plateau."""


class FdLeak(Injector):
    name = "fd-leak"
    summary = "a process opening files until its descriptor table is nearly full"
    fault_class = "fd_exhaustion"
    observe = "ls /proc/<pid>/fd | wc -l climbs to about fill x the `Max open files` of /proc/<pid>/limits"
    Options = FdLeakOptions

    def _build(self) -> list[Resource]:
        o = self.options
        assert isinstance(o, FdLeakOptions)
        self._dir = TempDir(self.host.tmp / run_name(self.tag, "fd"))
        cmd = worker_command(
            "fds",
            self.run,
            seconds=self.duration_s,
            limit=o.limit,
            fill=o.fill,
            per_s=o.fds_per_s,
            path=self._dir.path / "leaked",
        )
        return [self._dir, Worker(self.run, "leaker", cmd)]

    def _configure(self, resource: Resource) -> None:
        if resource is self._dir:
            (self._dir.path / "leaked").write_bytes(b"")

    def _entity(self) -> str:
        return f"process/{self.workers()[0].pid}"

    def _planned_entity(self) -> str:
        return "process/<pid of the leaker>"
