"""The injector base: a plan of named resources, a pre-flight that refuses conflicts, inject
in order, undo in reverse, and the entity the analysis should blame."""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sreagent.lab.live._errors import LabFailed, LabRefused
from sreagent.lab.live._host import CgroupMounts, LabHost
from sreagent.lab.live._names import run_name
from sreagent.lab.live._resources import CgroupDir, Resource, Worker

MAX_DURATION_S = 600.0
"""No live fault runs longer than ten minutes, whatever is asked."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlannedResource(_Frozen):
    kind: str
    """cgroup, netns, veth, nft-table, qdisc, tempdir or process."""
    name: str
    where: str = ""
    """Hierarchy root, namespace (``host`` for the host's) or parent directory."""


class Plan(_Frozen):
    """What an injection will create and what it will make faulty, before anything is done."""

    injector: str
    tag: str
    run_name: str
    duration_s: float
    fault_class: str
    """The hypothesis class the analysis is expected to rank first (sreagent.roles)."""
    entity: str
    """The entity the analysis should blame; ``process/<pid>`` until the process exists."""
    resources: tuple[PlannedResource, ...]
    observe: str
    """How to see the fault independently of sreagent (kernel files, tools)."""
    options: dict[str, Any] = Field(default_factory=dict)


class UndoResult(_Frozen):
    removed: tuple[str, ...]
    errors: tuple[str, ...]


class InjectorOptions(_Frozen):
    """Options common to nothing; each injector subclasses this with its own."""


class Injector(ABC):
    """One live fault. Subclasses declare ``name``, ``fault_class``, ``Options`` and build
    their resources in :meth:`_build`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    fault_class: ClassVar[str]
    observe: ClassVar[str]
    Options: ClassVar[type[InjectorOptions]] = InjectorOptions
    needs_tools: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(
        self, tag: str, duration_s: float, host: LabHost | None = None, **options: Any
    ) -> None:
        if not 0 < duration_s <= MAX_DURATION_S:
            raise LabRefused(
                f"duration must be more than 0 and at most {MAX_DURATION_S:.0f} s, got {duration_s}"
            )
        try:
            self.options = self.Options(**options)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()
            )
            raise LabRefused(f"bad option for {self.name}: {problems}") from err
        self.tag = tag
        self.run = run_name(tag)
        self.duration_s = float(duration_s)
        self._injected_ns: int | None = None
        self.host = host or LabHost()
        self.resources: list[Resource] = []
        self._built = False

    # --- what subclasses provide -----------------------------------------------------------

    @abstractmethod
    def _build(self) -> list[Resource]:
        """The resources, in creation order (workers last, so they start inside everything)."""

    @abstractmethod
    def _entity(self) -> str:
        """The entity to blame, once injected."""

    def _planned_entity(self) -> str:
        return self._entity()

    def _configure(self, resource: Resource) -> None:
        """Called after each resource is created (addresses, links up ...)."""
        del resource  # nothing to configure by default

    def related_entities(self) -> list[str]:
        """Other entities involved (every worker process, the cgroup it runs in ...)."""
        return [f"process/{w.pid}" for w in self.workers() if w.popen is not None]

    # --- the shared machinery -------------------------------------------------------------

    def build(self) -> list[Resource]:
        if not self._built:
            self.resources = self._build()
            self._built = True
        return self.resources

    def workers(self) -> list[Worker]:
        return [r for r in self.build() if isinstance(r, Worker)]

    def plan(self) -> Plan:
        resources = self.build()
        return Plan(
            injector=self.name,
            tag=self.tag,
            run_name=self.run,
            duration_s=self.duration_s,
            fault_class=self.fault_class,
            entity=self._planned_entity(),
            resources=tuple(
                PlannedResource(kind=r.kind, name=r.name, where=r.where) for r in resources
            ),
            observe=self.observe,
            options=self.options.model_dump(),
        )

    def preflight(self) -> None:
        """Refuse (nothing created) when not root, a tool is missing or a name is taken."""
        if os.geteuid() != 0:
            raise LabRefused(
                f"{self.name} needs root (cgroups, namespaces, nftables); nothing was done"
            )
        from sreagent.lab.live._host import require_tool

        for tool, why in self.needs_tools:
            require_tool(tool, why)
        conflicts = [c for r in self.build() if (c := r.conflict()) is not None]
        if conflicts:
            raise LabRefused(
                f"{self.name} refuses to run: {'; '.join(conflicts)}; it only touches what it creates "
                "(run `sreagent.lab.live.sweep()` if these are leftovers of a crashed lab run)"
            )

    def inject(self) -> None:
        """Create every resource in order; on failure remove what was made and raise."""
        self.preflight()
        try:
            for r in self.build():
                r.create()
                self._configure(r)
            self._injected_ns = time.time_ns()
        except BaseException as err:
            result = self.undo()
            if isinstance(err, LabFailed) and result.errors:
                raise LabFailed(f"{err}; undo also failed: {'; '.join(result.errors)}") from err
            raise

    def undo(self) -> UndoResult:
        """Remove what this injection created, in reverse order; errors are collected, not raised."""
        removed: list[str] = []
        errors: list[str] = []
        for r in reversed(self.build()):
            if not r.created:
                continue
            try:
                r.remove()
            except (LabFailed, OSError) as err:
                errors.append(f"{r.label()}: {err}")
            else:
                removed.append(r.label())
        return UndoResult(removed=tuple(removed), errors=tuple(errors))

    @property
    def injected_entity(self) -> str:
        return self._entity()

    def fault_started_ns(self) -> int | None:
        """When the fault began (wall clock ns), None until it has: when inject() finished for
        most injectors, later for a delayed one (net-loss with ``impair_after_s``)."""
        return self._injected_ns

    def finished(self) -> bool:
        """Whether every worker has exited (the fault ran its course, or was OOM-killed)."""
        return all(not w.running() for w in self.workers())


# --- helpers the cgroup-based injectors share ------------------------------------------------

CpuMode = Literal["v1", "v2"]


def cpu_quota_settings(
    mounts: CgroupMounts, cores: float, period_us: int = 100_000
) -> tuple[Path, list[tuple[str, str]]]:
    """The hierarchy root and control-file writes that cap a cgroup at ``cores`` CPUs."""
    quota = max(1000, int(cores * period_us))
    if "cpu" in mounts.v1:
        return mounts.v1["cpu"], [
            ("cpu.cfs_period_us", str(period_us)),
            ("cpu.cfs_quota_us", str(quota)),
        ]
    if mounts.v2 is not None and "cpu" in _v2_subtree(mounts.v2):
        return mounts.v2, [("cpu.max", f"{quota} {period_us}")]
    raise LabRefused(
        "no cgroup CPU controller: neither a v1 `cpu` hierarchy nor `cpu` enabled in the cgroup2 root"
    )


def memory_limit_settings(
    mounts: CgroupMounts, limit_bytes: int
) -> tuple[Path, list[tuple[str, str]]]:
    if "memory" in mounts.v1:
        # swappiness 0: on a host with swap the leak must meet the limit, not the swap device.
        return mounts.v1["memory"], [
            ("memory.limit_in_bytes", str(limit_bytes)),
            ("memory.swappiness", "0"),
        ]
    if mounts.v2 is not None and "memory" in _v2_subtree(mounts.v2):
        return mounts.v2, [("memory.max", str(limit_bytes)), ("memory.swap.max", "0")]
    raise LabRefused(
        "no cgroup memory controller: neither v1 `memory` nor `memory` enabled in the cgroup2 root"
    )


def _v2_subtree(root: Path) -> set[str]:
    try:
        return set((root / "cgroup.subtree_control").read_text().split())
    except OSError:
        return set()


def cgroup_dirs(
    mounts: CgroupMounts, rel: str, primary: tuple[Path, list[tuple[str, str]]], *extra: str
) -> list[CgroupDir]:
    """The same relative cgroup in the primary (limit-setting) hierarchy, in the ``extra`` v1
    controllers' hierarchies and in cgroup2 (for per-cgroup PSI on hybrid hosts), once each.

    The collector merges one relative path across hierarchies into one ``cgroup/<path>``
    entity, so the workload has to live in each hierarchy it should be seen through."""
    root, settings = primary
    dirs = [CgroupDir(root, rel, settings)]
    seen = {root}
    for controller in extra:
        other = mounts.v1.get(controller)
        if other is not None and other not in seen:
            dirs.append(CgroupDir(other, rel))
            seen.add(other)
    if mounts.v2 is not None and mounts.v2 not in seen:
        dirs.append(CgroupDir(mounts.v2, rel))
    return dirs
