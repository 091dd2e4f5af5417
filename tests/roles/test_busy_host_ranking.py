"""Ranking on a host that other work keeps busy (the live lab under load, issue 10): a CPU
saturation that was already there before the incident began explains no incident, and the
hot process of a throttled cgroup is that cgroup's work, not a runaway of its own."""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from sreagent.artifacts import AnomalyFinding, RootCauseHypothesis
from sreagent.roles import detect, hypothesise, observe
from sreagent.runtime import EvidenceView
from sreagent.telemetry.arrow import PROCESSES_SCHEMA, BatchFrame
from sreagent.testing import RoleEnvironment, WindowBuilder

from . import windows
from .windows import ONSET

WEB = "cgroup/system.slice/web.service"


def _ranking(view: EvidenceView) -> RootCauseHypothesis:
    env = RoleEnvironment()
    finding = env.run(detect, env.run(observe, view), view)
    assert isinstance(finding.payload, AnomalyFinding)
    assert finding.payload.incident is not None, "the fault opened no incident"
    hyp = env.run(hypothesise, finding, view)
    assert isinstance(hyp.payload, RootCauseHypothesis)
    return hyp.payload


def _busy(w: WindowBuilder) -> WindowBuilder:
    """Other work keeps the host's CPU saturated from the window's start."""
    w.gauge("cpu_utilisation_ratio", base=0.99, noise=0.005, hi=1.0)
    w.gauge("pressure_some_ratio", base=0.6, noise=0.03, labels={"resource": "cpu"})
    w.gauge("procs_running", base=10.0, noise=1.0)
    w.gauge("process_cpu_ratio", "process/77", base=3.5, noise=0.05)
    return w


def test_packet_loss_on_a_host_busy_since_before_the_incident_ranks_first() -> None:
    w = _busy(windows.quiet(seed=31))
    w.ramp("tcp_retransmit_ratio", start_s=ONSET, to=0.06, ramp_s=5)
    ranking = _ranking(w.view())
    assert ranking.hypotheses[0].fault_class == "packet_loss"
    # Nothing about the CPU changed: the standing saturation scores nothing (listed at most
    # with its penalty and the reason).
    for h in ranking.hypotheses:
        if h.fault_class == "cpu_saturation":
            assert h.features["penalty_saturated_before_incident"] < 0
            assert any("before the incident began" in c for c in h.counter_evidence)


def test_a_host_saturated_by_the_incident_itself_keeps_cpu_saturation_first() -> None:
    # The control for the test above: the same host saturating at the onset is the incident.
    ranking = _ranking(windows.cpu_saturation(seed=32).view())
    top = ranking.hypotheses[0]
    assert (top.fault_class, top.entity) == ("cpu_saturation", "process/4242")
    assert "penalty_saturated_before_incident" not in top.features


def _with_process_rows(view_frames: list[BatchFrame], pid: int, cgroup: str,
                       cpu: float) -> EvidenceView:
    """The window's frames with one process row per batch for ``pid`` in ``cgroup``."""
    out = []
    for f in view_frames:
        ts = int(f.samples.column("ts_ns").to_numpy().max())
        row = {"ts_ns": ts, "pid": pid, "ppid": 1, "comm": "worker", "cmdline": "worker",
               "uid": 0, "state": "R", "cgroup": cgroup, "threads": 4,
               "cpu_seconds_total": 1.0, "cpu_ratio": cpu, "rss_bytes": 1 << 26}
        out.append(dataclasses.replace(
            f, processes=pa.Table.from_pylist([row], schema=PROCESSES_SCHEMA)))
    return EvidenceView.from_frames(out)


def test_the_hot_process_of_a_throttled_cgroup_is_its_work_not_the_cause() -> None:
    # cgroup_throttling's window on a host that other work saturates as the quota bites.
    w = windows.cgroup_throttling(seed=33)
    w.ramp("cpu_utilisation_ratio", start_s=ONSET, to=0.99, ramp_s=3)
    w.ramp("pressure_some_ratio", labels={"resource": "cpu"}, start_s=ONSET, to=0.6, ramp_s=3)
    w.ramp("procs_running", start_s=ONSET, to=12.0, ramp_s=3)
    view = _with_process_rows(w.frames(), 4242, "/system.slice/web.service", 1.9)
    ranking = _ranking(view)
    top = ranking.hypotheses[0]
    assert (top.fault_class, top.entity) == ("cgroup_cpu_throttling", WEB)
    cpu = [h for h in ranking.hypotheses if h.fault_class == "cpu_saturation"]
    assert cpu and cpu[0].features["penalty_process_in_throttled_cgroup"] < 0
