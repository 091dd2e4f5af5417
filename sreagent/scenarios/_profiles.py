"""Host profiles: the hardware, cgroups and processes a synthetic host has.

A profile is declarative YAML (``sreagent/scenarios/profiles/<name>.yaml``, or inline in a
scenario) validated by :class:`HostProfile`. It names every entity the generator will emit, in
the collector's naming (:mod:`sreagent.telemetry.names`): ``disk/<dev>``, ``fs/<mount>``,
``nic/<if>``, ``cgroup/<path>``, ``process/<pid>``, ``gpu/<i>``, ``ib/<dev>/<port>``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sreagent.errors import BadInput
from sreagent.telemetry.names import entity

GiB = 2**30


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DiskSpec(_Spec):
    name: str
    """Block device name (``nvme0n1``, ``sda``)."""
    kind: Literal["nvme", "ssd", "hdd", "virtual"] = "nvme"
    size_bytes: Annotated[int, Field(gt=0)] = 1024 * GiB
    iops_capacity: Annotated[float, Field(gt=0)] | None = None
    """IOs per second at saturation (default by kind)."""
    bandwidth_bytes: Annotated[float, Field(gt=0)] | None = None
    """Bytes per second at saturation (default by kind)."""
    service_time_s: Annotated[float, Field(gt=0)] | None = None
    """Average device service time per IO when idle (default by kind)."""

    def capacity(self) -> tuple[float, float, float]:
        """(iops, bytes per second, service time) with defaults for the kind."""
        iops, bw, svc = {
            "nvme": (400_000.0, 3.0e9, 0.00008),
            "ssd": (80_000.0, 5.0e8, 0.0002),
            "hdd": (180.0, 1.8e8, 0.006),
            "virtual": (20_000.0, 2.5e8, 0.0005),
        }[self.kind]
        return (self.iops_capacity or iops, self.bandwidth_bytes or bw,
                self.service_time_s or svc)


class FilesystemSpec(_Spec):
    mount: str
    disk: str
    size_bytes: Annotated[int, Field(gt=0)]
    inodes: Annotated[int, Field(gt=0)] = 6_553_600
    used_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.4
    inodes_used_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.1

    @property
    def entity(self) -> str:
        return entity("fs", self.mount)


class NicSpec(_Spec):
    name: str
    speed_mbps: Annotated[int, Field(gt=0)] = 10_000
    driver: str = "virtio_net"
    mtu: int = 1500
    rx_bytes_per_second: Annotated[float, Field(ge=0)] = 2.0e6
    """Receive rate at baseline load 1.0."""
    tx_bytes_per_second: Annotated[float, Field(ge=0)] = 4.0e6


class CgroupSpec(_Spec):
    path: str
    """Path below the cgroup root, without a leading slash (``system.slice/app.service``)."""
    cpu_limit_cores: Annotated[float, Field(gt=0)] | None = None
    memory_limit_bytes: Annotated[int, Field(gt=0)] | None = None

    @property
    def entity(self) -> str:
        return entity("cgroup", self.path)


ProcessRole = Literal["service", "daemon", "cron", "backup", "trainer", "batch", "idle"]


class ProcessSpec(_Spec):
    pid: Annotated[int, Field(ge=1, lt=4_194_304)]
    ppid: Annotated[int, Field(ge=0)] = 1
    comm: Annotated[str, Field(max_length=15)]
    cmdline: str = ""
    uid: int = 0
    cgroup: str = "system.slice"
    role: ProcessRole = "service"
    threads: Annotated[int, Field(ge=1)] = 1
    cpu_cores: Annotated[float, Field(ge=0)] = 0.01
    """CPU demand at baseline load 1.0 (services scale with load; daemons do not)."""
    rss_bytes: Annotated[int, Field(ge=0)] = 20 * 2**20
    fds: Annotated[int, Field(ge=0)] = 32
    fd_limit: Annotated[int, Field(gt=0)] = 1024
    disk: str | None = None
    """Device the process does its IO on."""
    read_bytes_per_second: Annotated[float, Field(ge=0)] = 0.0
    write_bytes_per_second: Annotated[float, Field(ge=0)] = 0.0
    listen_port: int | None = None
    gpu: int | None = None
    """GPU index the process drives (training ranks)."""

    @property
    def entity(self) -> str:
        return entity("process", self.pid)


class GpuSpec(_Spec):
    count: Annotated[int, Field(ge=1, le=16)] = 8
    model: str = "NVIDIA H100 80GB HBM3"
    memory_bytes: Annotated[int, Field(gt=0)] = 80 * GiB
    power_cap_watts: Annotated[float, Field(gt=0)] = 700.0
    idle_watts: Annotated[float, Field(gt=0)] = 70.0
    max_sm_clock_hertz: Annotated[float, Field(gt=0)] = 1.98e9
    slowdown_celsius: float = 87.0
    """Temperature at which the GPU starts thermal slowdown."""
    nvlink_links: Annotated[int, Field(ge=0, le=18)] = 18
    pcie_generation: Annotated[int, Field(ge=1, le=6)] = 5
    pcie_width: Annotated[int, Field(ge=1, le=16)] = 16


class IbPortSpec(_Spec):
    device: str
    port: Annotated[int, Field(ge=1)] = 1
    rate_gbps: Annotated[float, Field(gt=0)] = 400.0
    bytes_per_second: Annotated[float, Field(ge=0)] = 1.5e10
    """Data rate at baseline during training."""

    @property
    def entity(self) -> str:
        return entity("ib", f"{self.device}/{self.port}")


class HostProfile(_Spec):
    """One synthetic host."""

    name: str
    host: str
    """Host name the batches carry."""
    description: str = ""
    cpu_model: str = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    cpu_count: Annotated[int, Field(ge=1, le=512)] = 4
    memory_bytes: Annotated[int, Field(gt=0)] = 16 * GiB
    kernel_memory_bytes: Annotated[int, Field(ge=0)] = 600 * 2**20
    """Memory used outside the listed processes (kernel, slab, unlisted daemons)."""
    swap_bytes: Annotated[int, Field(ge=0)] = 0
    fd_max: Annotated[int, Field(gt=0)] = 1_623_872
    """fs.file-max (the kernel sizes it from RAM; this is a 16 GiB host's value)."""
    disks: list[DiskSpec]
    filesystems: list[FilesystemSpec]
    nics: list[NicSpec]
    cgroups: list[CgroupSpec] = []
    processes: list[ProcessSpec]
    filler_processes: Annotated[int, Field(ge=0, le=2000)] = 40
    """Mostly idle processes (kernel threads, agents) that make the process table realistic."""
    gpus: GpuSpec | None = None
    ib_ports: list[IbPortSpec] = []
    labels: dict[str, str] = {}

    @model_validator(mode="after")
    def _check_references(self) -> HostProfile:
        disks = {d.name for d in self.disks}
        cgroups = {c.path for c in self.cgroups}
        pids = [p.pid for p in self.processes]
        if len(set(pids)) != len(pids):
            raise ValueError("two processes share a pid")
        for fs in self.filesystems:
            if fs.disk not in disks:
                raise ValueError(f"filesystem {fs.mount} is on unknown disk {fs.disk!r}")
        for p in self.processes:
            if p.disk is not None and p.disk not in disks:
                raise ValueError(f"process {p.pid} uses unknown disk {p.disk!r}")
            if p.cgroup not in cgroups and p.cgroup != "system.slice":
                raise ValueError(f"process {p.pid} is in unknown cgroup {p.cgroup!r}")
            if p.gpu is not None and (self.gpus is None or p.gpu >= self.gpus.count):
                raise ValueError(f"process {p.pid} drives GPU {p.gpu}, which the host lacks")
        return self

    def entities(self) -> set[str]:
        """Every entity this profile emits (for checking scenario targets)."""
        out = {"host", *(entity("cpu", i) for i in range(self.cpu_count))}
        out |= {entity("disk", d.name) for d in self.disks}
        out |= {f.entity for f in self.filesystems}
        out |= {entity("nic", n.name) for n in self.nics}
        out |= {c.entity for c in self.cgroups}
        out |= {p.entity for p in self.processes}
        out |= {p.entity for p in self.ib_ports}
        if self.gpus:
            out |= {entity("gpu", i) for i in range(self.gpus.count)}
        return out


def builtin_profile_names() -> list[str]:
    """Names of the profiles shipped with sreagent."""
    folder = resources.files("sreagent.scenarios") / "profiles"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir()
                  if p.name.endswith(".yaml"))


@cache
def builtin_profile(name: str) -> HostProfile:
    """A shipped profile by name (``web-vm``, ``db-server``, ``k8s-node``, ``gpu-node-8x-h100``)."""
    names = builtin_profile_names()
    if name not in names:
        raise BadInput(f"unknown host profile {name!r}; built-in profiles are {names}",
                       field="profile")
    text = (resources.files("sreagent.scenarios") / "profiles" / f"{name}.yaml").read_text()
    try:
        return HostProfile.model_validate(yaml.safe_load(text))
    except ValidationError as err:  # a shipped profile is broken: say which and where
        first = err.errors()[0]
        raise BadInput(first["msg"], field=".".join(map(str, first["loc"])),
                       path=f"profiles/{name}.yaml") from None
