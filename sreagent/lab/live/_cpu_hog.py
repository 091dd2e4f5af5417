"""``cpu-hog``: one process keeping every CPU busy (N hashing threads) for the duration."""

from __future__ import annotations

import os

from pydantic import Field

from sreagent.lab.live._injector import Injector, InjectorOptions
from sreagent.lab.live._resources import Resource, Worker, worker_command


class CpuHogOptions(InjectorOptions):
    threads: int = Field(0, ge=0, le=256)
    """Busy threads; 0 means one per online CPU."""


class CpuHog(Injector):
    name = "cpu-hog"
    summary = "one process spinning a thread per CPU"
    fault_class = "cpu_saturation"
    observe = (
        "utime+stime of the hog in /proc/<pid>/stat grow by about one CPU-second per second per "
        "thread it gets; /proc/stat busy share and /proc/pressure/cpu rise"
    )
    Options = CpuHogOptions

    def _threads(self) -> int:
        assert isinstance(self.options, CpuHogOptions)
        return self.options.threads or os.cpu_count() or 1

    def _build(self) -> list[Resource]:
        cmd = worker_command("spin", self.run, seconds=self.duration_s, threads=self._threads())
        return [Worker(self.run, "hog", cmd)]

    def _entity(self) -> str:
        return f"process/{self.workers()[0].pid}"

    def _planned_entity(self) -> str:
        return "process/<pid of the hog>"
