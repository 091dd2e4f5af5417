"""Hand-built telemetry windows for the role tests (real batch frames via WindowBuilder)."""

from __future__ import annotations

from sreagent.artifacts import AnomalyFinding
from sreagent.roles import detect, observe
from sreagent.runtime import EvidenceView
from sreagent.testing import RoleEnvironment, WindowBuilder

ONSET = 600


def opened_index(view: EvidenceView) -> int | None:
    """The sample at which the analyzer opened its incident (None: no incident)."""
    env = RoleEnvironment()
    finding = env.run(detect, env.run(observe, view), view)
    assert isinstance(finding.payload, AnomalyFinding)
    joint = [f for f in finding.payload.findings if f.detector == "joint_risk"]
    if finding.payload.incident is None or not joint:
        return None
    return int((joint[0].onset_ns - view.start_ns) // 10**9)


def quiet(seconds: int = 900, seed: int = 1, **kw: object) -> WindowBuilder:
    """A healthy host: moderate CPU, memory, an NVMe disk, one NIC, two cgroups."""
    w = WindowBuilder(seconds=seconds, seed=seed, **kw)  # type: ignore[arg-type]
    w.gauge("cpu_utilisation_ratio", base=0.30, noise=0.03, hi=1.0)
    w.gauge("pressure_some_ratio", base=0.02, noise=0.005, labels={"resource": "cpu"})
    w.gauge("pressure_some_ratio", base=0.01, noise=0.003, labels={"resource": "io"})
    w.gauge("pressure_some_ratio", base=0.0, noise=0.0, labels={"resource": "memory"})
    w.gauge("procs_running", base=2.0, noise=0.5)
    w.gauge("memory_used_ratio", base=0.45, noise=0.005)
    w.gauge("process_cpu_ratio", "process/4242", base=0.2, noise=0.02)
    w.gauge("process_cpu_ratio", "process/77", base=0.4, noise=0.03)
    w.gauge("disk_utilisation_ratio", "disk/nvme0n1", base=0.2, noise=0.03)
    w.gauge("disk_await_seconds", "disk/nvme0n1", base=0.0008, noise=0.0001)
    w.gauge("disk_in_flight", "disk/nvme0n1", base=1.0, noise=0.3)
    w.gauge("tcp_retransmit_ratio", base=0.001, noise=0.0002)
    w.gauge("network_drops_per_second", "nic/eth0", base=0.0, noise=0.0)
    w.counter("oom_kills_total", rate=0.0, start=3.0)
    for cg, use in (("cgroup/system.slice/web.service", 1.0),
                    ("cgroup/system.slice/batch.service", 0.5)):
        w.gauge("cgroup_cpu_usage_ratio", cg, base=use, noise=0.05)
        w.gauge("cgroup_cpu_throttled_ratio", cg, base=0.0, noise=0.0)
        w.gauge("cgroup_cpu_limit_cores", cg, base=2.0)
        w.gauge("cgroup_io_bytes_per_second", cg, base=5e6, noise=5e5,
                labels={"direction": "write"})
        w.gauge("cgroup_pressure_some_ratio", cg, base=0.01, noise=0.003,
                labels={"resource": "io"})
    return w


def cpu_saturation(seed: int = 1, **kw: object) -> WindowBuilder:
    w = quiet(seed=seed, **kw)
    w.ramp("cpu_utilisation_ratio", start_s=ONSET, to=0.99, ramp_s=3, noise=0.005)
    w.ramp("pressure_some_ratio", labels={"resource": "cpu"}, start_s=ONSET, to=0.55, ramp_s=3)
    w.ramp("procs_running", start_s=ONSET, to=11.0, ramp_s=3)
    w.ramp("process_cpu_ratio", "process/4242", start_s=ONSET, to=3.2, ramp_s=3)
    return w


def cgroup_throttling(seed: int = 1) -> WindowBuilder:
    w = quiet(seed=seed)
    cg = "cgroup/system.slice/web.service"
    w.ramp("cgroup_cpu_usage_ratio", cg, start_s=ONSET, to=1.98, ramp_s=3, noise=0.01)
    w.ramp("cgroup_cpu_throttled_ratio", cg, start_s=ONSET, to=0.6, ramp_s=3, noise=0.02)
    w.ramp("cpu_utilisation_ratio", start_s=ONSET, to=0.6, ramp_s=3)
    w.ramp("procs_running", start_s=ONSET, to=5.0, ramp_s=3)
    w.ramp("process_cpu_ratio", "process/4242", start_s=ONSET, to=1.9, ramp_s=3)
    return w


def disk_saturation(seed: int = 1, kind: str = "nvme") -> WindowBuilder:
    w = quiet(seed=seed, disks=(("nvme0n1", kind),))
    w.ramp("disk_utilisation_ratio", "disk/nvme0n1", start_s=ONSET, to=0.99, ramp_s=3)
    w.ramp("disk_await_seconds", "disk/nvme0n1", start_s=ONSET, to=0.040, ramp_s=3)
    w.ramp("disk_in_flight", "disk/nvme0n1", start_s=ONSET, to=24.0, ramp_s=3)
    w.ramp("pressure_some_ratio", labels={"resource": "io"}, start_s=ONSET, to=0.5, ramp_s=3)
    for cg in ("cgroup/system.slice/web.service", "cgroup/system.slice/batch.service"):
        w.ramp("cgroup_pressure_some_ratio", cg, labels={"resource": "io"}, start_s=ONSET,
               to=0.4, ramp_s=3)
    return w


def noisy_neighbour(seed: int = 1) -> WindowBuilder:
    w = disk_saturation(seed=seed)
    # Same device symptoms, but one cgroup's writes jumped and only the other one stalls.
    w.ramp("cgroup_io_bytes_per_second", "cgroup/system.slice/batch.service",
           labels={"direction": "write"}, start_s=ONSET, to=450e6, ramp_s=3)
    w.ramp("cgroup_pressure_some_ratio", "cgroup/system.slice/batch.service",
           labels={"resource": "io"}, start_s=ONSET, to=0.02, ramp_s=3)
    return w
