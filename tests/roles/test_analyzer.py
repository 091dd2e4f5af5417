"""The analyzer on hand-built windows: detection, look-alikes, quiet controls, hysteresis."""

from __future__ import annotations

import numpy as np
import pytest

from sreagent.artifacts import AnomalyFinding, RootCauseHypothesis
from sreagent.chain import Chain
from sreagent.roles import detect, hypothesise, observe
from sreagent.testing import RoleEnvironment

from . import windows
from .windows import ONSET


def _top(w) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    result = Chain().run(w.view())
    assert result.top is not None, "no hypothesis"
    return result.top


def _finding(view, env=None, prior=None):  # type: ignore[no-untyped-def]
    env = env or RoleEnvironment()
    obs = env.run(observe, view)
    return env.run(detect, obs, view, prior=prior)


def test_quiet_window_opens_no_incident() -> None:
    for seed in range(5):
        f = _finding(windows.quiet(seed=seed).view())
        assert isinstance(f.payload, AnomalyFinding)
        assert f.payload.incident is None, f.payload.summary
        assert f.incident_id == "none"


def test_cpu_saturation_is_localised_to_the_runaway_process() -> None:
    assert _top(windows.cpu_saturation()) == ("cpu_saturation", "process/4242")


def test_cgroup_throttling_is_not_mistaken_for_cpu_saturation() -> None:
    assert _top(windows.cgroup_throttling()) == ("cgroup_cpu_throttling",
                                                  "cgroup/system.slice/web.service")


def test_io_saturation_is_the_device() -> None:
    assert _top(windows.disk_saturation()) == ("disk_io_saturation", "disk/nvme0n1")


def test_noisy_neighbour_is_the_cgroup_whose_io_jumped() -> None:
    assert _top(windows.noisy_neighbour()) == ("noisy_neighbour",
                                                "cgroup/system.slice/batch.service")


def test_disk_latency_threshold_depends_on_the_device_kind() -> None:
    # 40 ms of await is saturation for an NVMe drive and ordinary for a spinning disk.
    nvme = _finding(windows.disk_saturation(kind="nvme").view())
    hdd = _finding(windows.disk_saturation(kind="hdd").view())
    by_metric = {f.metric: f for f in nvme.payload.findings}
    assert by_metric["disk_await_seconds"].detector == "static_threshold"
    assert by_metric["disk_await_seconds"].threshold == pytest.approx(0.010)
    hdd_await = [f for f in hdd.payload.findings if f.metric == "disk_await_seconds"]
    assert all(f.detector != "static_threshold" for f in hdd_await)


def test_detection_within_three_samples_of_onset() -> None:
    f = _finding(windows.cpu_saturation().view())
    joint = [x for x in f.payload.findings if x.detector == "joint_risk"]
    assert joint, f.payload.summary
    delay = (joint[0].onset_ns - (windows.quiet().start_ns + ONSET * 10**9)) / 1e9
    assert 0 <= delay <= 3


def test_hypotheses_carry_features_evidence_and_diagnostics() -> None:
    view = windows.cpu_saturation().view()
    env = RoleEnvironment()
    f = _finding(view, env)
    h = env.run(hypothesise, f, view)
    assert isinstance(h.payload, RootCauseHypothesis)
    top = h.payload.hypotheses[0]
    assert top.features and all(np.isfinite(list(top.features.values())))
    assert {r.metric for r in top.evidence_refs} >= {"cpu_utilisation_ratio",
                                                      "process_cpu_ratio"}
    assert all(r.batch_ids for r in top.evidence_refs)
    assert top.next_diagnostics
    assert h.input_artifact_ids == [f.artifact_id]
    # Ranks are 1..n and scores do not increase.
    assert [x.rank for x in h.payload.hypotheses] == list(range(1, len(h.payload.hypotheses)
                                                                 + 1))
    scores = [x.score for x in h.payload.hypotheses]
    assert scores == sorted(scores, reverse=True)


def test_an_open_incident_continues_into_the_next_window() -> None:
    w = windows.cpu_saturation()
    full = w.view()
    from sreagent.runtime import EvidenceView

    frames = w.frames()
    first = EvidenceView.from_frames(frames, end_ns=full.start_ns + 700 * 10**9)
    second = EvidenceView.from_frames(frames, start_ns=full.start_ns + 300 * 10**9)
    f1 = _finding(first)
    f2 = _finding(second, prior=f1)
    assert f1.payload.incident is not None and f1.payload.incident.state == "opened"
    assert f2.payload.incident is not None
    assert f2.payload.incident.incident_id == f1.payload.incident.incident_id
    assert f2.payload.incident.state == "updated"
    assert f1.artifact_id in f2.input_artifact_ids


def test_an_incident_closes_after_the_cool_down() -> None:
    w = windows.quiet()
    w.ramp("cpu_utilisation_ratio", start_s=ONSET, to=0.99, ramp_s=2, end_s=700)
    w.ramp("pressure_some_ratio", labels={"resource": "cpu"}, start_s=ONSET, to=0.6,
           ramp_s=2, end_s=700)
    f = _finding(w.view())
    assert f.payload.incident is not None and f.payload.incident.state == "closed"


def test_recurring_bursts_are_routine() -> None:
    # Three short identical bursts of process CPU (a cron job): a deviation each time, but
    # the later ones are recognised as routine and no incident opens.
    w = windows.quiet()
    for start in (350, 500, 650, 800):
        w.ramp("procs_running", start_s=start, to=6.0, end_s=start + 20)
    f = _finding(w.view())
    assert f.payload.incident is None
    assert any(x.detector == "recurring_burst" for x in f.payload.findings)
