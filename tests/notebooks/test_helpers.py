"""sreagent.reports: the pure helpers the notebooks import, on a freshly recorded lab package."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import polars as pl
import pytest

from sreagent.artifacts import ArtifactKind, ExecutionPlan, RemediationProposal
from sreagent.errors import BadInput, CorruptFile
from sreagent.reports import (
    Signal,
    action_table,
    artifact_table,
    diff_lines,
    downsample,
    hypothesis_signals,
    hypothesis_table,
    key_signals,
    knob_overrides,
    list_packages,
    load_postmortem,
    markers,
    recorded_knobs,
    run_what_if,
    signal_frame,
    split_series,
    timeline_figure,
    unit_of,
)


@pytest.fixture(scope="module")
def pm(lab_package: Path):  # type: ignore[no-untyped-def]
    return load_postmortem(lab_package)


def test_split_series_reads_the_analyzers_labelled_names() -> None:
    assert split_series("network_drops_per_second{direction=receive}") == (
        "network_drops_per_second", {"direction": "receive"})
    assert split_series("a{x=1,y=2}") == ("a", {"x": "1", "y": "2"})
    assert split_series("cpu_utilisation_ratio") == ("cpu_utilisation_ratio", {})
    with pytest.raises(BadInput, match="k=v"):
        split_series("a{oops}")


def test_unit_of_follows_the_metric_suffix() -> None:
    assert unit_of("tcp_retransmits_per_second") == "per second"
    assert unit_of("cpu_utilisation_ratio") == "ratio (0-1)"
    assert unit_of("gpu_temperature_celsius") == "°C"
    assert unit_of("joint_risk") == "value"


def test_artifact_table_links_each_artifact_to_its_inputs(pm) -> None:  # type: ignore[no-untyped-def]
    table = artifact_table(pm.artifacts)
    assert table["kind"].to_list() == [a.kind.value for a in pm.artifacts]
    short = {a.artifact_id[:12] for a in pm.artifacts}
    for row, artifact in zip(table.iter_rows(named=True), pm.artifacts, strict=True):
        inputs = [i for i in row["inputs"].split(", ") if i]
        assert inputs == [i[:12] for i in artifact.input_artifact_ids]
        assert set(inputs) <= short  # every link points at an artifact of this run
    assert table["inputs"][0] == ""  # the observation summary starts the chain


def test_hypotheses_and_actions_are_the_recorded_ones(pm) -> None:  # type: ignore[no-untyped-def]
    hyps = hypothesis_table(pm)
    recorded = pm.hypotheses.hypotheses
    assert hyps["rank"].to_list() == [h.rank for h in recorded]
    assert hyps["fault_class"][0] == "packet_loss" and hyps["entity"][0] == "nic/eth0"
    assert pm.top_hypothesis.startswith("packet_loss at nic/eth0")

    actions = action_table(pm)
    proposal = pm.payload(ArtifactKind.REMEDIATION_PROPOSAL)
    plan = pm.payload(ArtifactKind.EXECUTION_PLAN)
    assert isinstance(proposal, RemediationProposal) and isinstance(plan, ExecutionPlan)
    assert actions["action"].to_list() == [a.action for a in proposal.actions]
    by_id = {d.action_id: d for d in plan.decisions}
    for row, action in zip(actions.iter_rows(named=True), proposal.actions, strict=True):
        assert row["decision"] == by_id[action.action_id].decision
        assert row["reasons"] == "; ".join(by_id[action.action_id].reasons)
    assert "blocked" in actions["decision"].to_list()  # the destructive vacuum stays blocked


def test_key_signals_skip_the_joint_risk_and_routine_bursts(pm) -> None:  # type: ignore[no-untyped-def]
    signals = key_signals(pm)
    metrics = [s.metric for s in signals]
    assert metrics[0] == "tcp_retransmit_ratio"  # cited first by the top hypothesis
    assert "joint_risk" not in metrics
    routine = {f.metric for f in pm.finding.findings if f.detector == "recurring_burst"}
    assert not routine & set(metrics)
    # the labelled drops series is covered by the whole metric on nic/eth0, not listed twice
    assert [s for s in signals if s.metric == "network_drops_per_second"] == [
        Signal("network_drops_per_second", "nic/eth0")]


def test_signal_frame_holds_exactly_the_packages_samples(pm) -> None:  # type: ignore[no-untyped-def]
    samples = pl.from_arrow(pm.samples.select(["ts_ns", "metric", "entity", "value"]))
    want = samples.filter((pl.col("metric") == "tcp_retransmit_ratio") & (pl.col("entity") == "host"))
    frame = signal_frame(pm.samples, [Signal("tcp_retransmit_ratio", "host")])
    assert frame.height == want.height > 0
    assert frame["value"].sum() == pytest.approx(want["value"].sum())
    both = signal_frame(pm.samples, [Signal("network_drops_per_second", "nic/eth0")])
    assert sorted(both["series"].unique()) == ["direction=receive", "direction=transmit"]
    one = signal_frame(pm.samples, [Signal("network_drops_per_second", "nic/eth0", (("direction", "receive"),))])
    assert one["series"].unique().to_list() == ["direction=receive"]
    assert one.height * 2 == both.height
    assert signal_frame(pm.samples, [Signal("no_such_metric", "host")]).is_empty()


def test_downsample_averages_long_series_into_buckets() -> None:
    n = 3600
    frame = pl.DataFrame({
        "time": pl.datetime_range(pl.datetime(2026, 1, 1), pl.datetime(2026, 1, 1, 0, 59, 59),
                                  "1s", eager=True, time_zone="UTC"),
        "value": [float(i % 10) for i in range(n)],
        "signal": ["s"] * n,
        "series": ["s"] * n,
    })
    small = downsample(frame, max_points=600)
    assert 0 < small.height <= 600
    assert small["value"].mean() == pytest.approx(frame["value"].mean(), rel=0.01)
    assert downsample(frame.head(100), max_points=600).equals(frame.head(100))


def test_markers_are_anomaly_onsets_and_actions(pm) -> None:  # type: ignore[no-untyped-def]
    marks = markers(pm)
    kinds = {m.kind for m in marks}
    assert kinds == {"anomaly", "action"}
    assert all("recurring_burst" not in m.label for m in marks)
    assert pm.incident_window is not None
    joint = next(f for f in pm.finding.findings if f.detector == "joint_risk")
    assert pm.incident_window == (joint.onset_ns, pm.window[1])


def test_timeline_figure_is_svg_naming_its_signals(pm) -> None:  # type: ignore[no-untyped-def]
    figure = timeline_figure(pm, hypothesis_signals(pm, 1))
    assert figure.svg.lstrip().startswith("<svg")
    assert "tcp_retransmit_ratio on host" in figure.svg
    assert "tcp_retransmit_ratio on host" in repr(figure)
    with pytest.raises(BadInput, match="rank 9"):
        hypothesis_signals(pm, 9)


def test_what_if_knobs_become_overrides_and_the_replay_shows_the_diff(pm) -> None:  # type: ignore[no-untyped-def]
    recorded = recorded_knobs(pm.run["chain"])
    assert knob_overrides(recorded, recorded) == {}
    stricter = dataclasses.replace(recorded, min_risk_to_open=1.0, dry_run=False)
    overrides = knob_overrides(recorded, stricter)
    assert overrides == {"detection.min_risk_to_open": 1.0, "posture.dry_run": False}
    result = run_what_if(pm.path, {"detection.min_risk_to_open": 1.0})
    assert result.decisions is not None and not result.decisions.incident_after
    assert diff_lines(result)[0] == "incident closed (no longer opened)"
    with pytest.raises(BadInput, match="malformed"):
        recorded_knobs({"detection": {"min_risk_to_open": "high"}})


def test_bad_packages_are_refused_naming_what_is_wrong(tmp_path: Path, lab_package: Path) -> None:
    with pytest.raises(BadInput, match=r"no manifest\.json"):
        load_postmortem(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in lab_package.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "artifacts.parquet").write_bytes(b"not parquet")
    with pytest.raises(CorruptFile, match=r"artifacts\.parquet"):
        load_postmortem(broken)
    assert list_packages(lab_package.parent) == [lab_package]
    with pytest.raises(BadInput, match="no such evidence directory"):
        list_packages(tmp_path / "nope")
    json.loads((lab_package / "config.json").read_text())  # untouched by the copy above
