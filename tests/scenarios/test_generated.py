"""Every scenario of the library, generated: the contract, the fault's visibility, the truth.

The movement statistic is :func:`sreagent.scenarios.moved` (module docstring of
``sreagent/scenarios/_stats.py``): a gauge moved when >= 30 % of its fault-window samples lie
outside the baseline window's interquartile range widened by max(3 robust sigma, 5 % of the
median, a unit floor); a counter moved when its increase over the window departs from the
baseline rate by more than 25 % + 3 sigma sqrt(n) + 0.5. The baseline window is everything
before the first fault's onset (for controls: the first half; the window is the second half).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sreagent.scenarios import (
    CATALOGUE,
    LAB_LABEL,
    GeneratedScenario,
    frame_to_wire,
    generate,
    load_scenario,
    moved,
    scenario_ids,
)
from sreagent.telemetry import batch_digest, decode_batch, encode_batch
from sreagent.telemetry.arrow import BatchHeader, _check_rows
from sreagent.telemetry.names import EVENT_KINDS, METRICS_BY_NAME

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"
IDS = scenario_ids(FIXTURES)


@pytest.fixture(scope="module", params=IDS)
def scenario(request: pytest.FixtureRequest) -> Iterator[GeneratedScenario]:
    # Module scope: pytest runs every test of this module for one scenario before
    # generating the next, so each scenario is generated once.
    yield generate(load_scenario(request.param, FIXTURES))


def _series(s: GeneratedScenario) -> Iterator[tuple[str, str, dict[str, str], np.ndarray, np.ndarray]]:
    n = s.truth.steps
    for (metric, entity, labels), values, present in zip(
        s.series.keys, s.series.values, s.series.present, strict=True
    ):
        yield metric, entity, dict(labels), values, (
            present if present is not None else np.ones(n, bool))


def _baseline(s: GeneratedScenario) -> slice:
    onsets = [f.onset_s for f in s.definition.faults]
    end = min(onsets) if onsets else s.definition.duration_s // 2
    return slice(0, end // s.definition.resolution_s)


def _planned_restart_entities(s: GeneratedScenario) -> set[str]:
    out = set()
    for frame in s.frames:
        if frame.events.num_rows:
            for row in frame.events.to_pylist():
                if row["kind"] == "process_exit" and "planned restart" in row["message"]:
                    out.add(row["entity"])
    return out


def test_cited_metrics_move_beyond_their_baseline(scenario: GeneratedScenario) -> None:
    base = _baseline(scenario)
    for cause in scenario.truth.causes:
        window = slice(*cause.window)
        assert window.stop - window.start >= 30, "the visible window is too short to judge"
        for metric in cause.cited_metrics:
            hits = [entity for m, entity, _, values, present in _series(scenario)
                    if m == metric and moved(m, values, present, base, window)]
            assert hits, f"{cause.fault_class}: cited {metric} did not move in steps {cause.window}"


def test_nothing_outside_the_faults_propagation_set_moves(scenario: GeneratedScenario) -> None:
    base = _baseline(scenario)
    allowed = set().union(*(CATALOGUE[f.fault_class].moves for f in scenario.definition.faults))
    windows = [slice(*c.window) for c in scenario.truth.causes] or [
        slice(base.stop, scenario.truth.steps)]
    restarted = _planned_restart_entities(scenario)
    wrong = []
    for metric, entity, labels, values, present in _series(scenario):
        if metric in allowed or entity in restarted:
            continue
        for window in windows:
            if moved(metric, values, present, base, window):
                wrong.append(f"{metric}{labels} at {entity} in steps {window.start}-{window.stop}")
    assert not wrong, wrong


def test_truth_is_resolved_from_the_data(scenario: GeneratedScenario) -> None:
    truth, definition = scenario.truth, scenario.definition
    assert truth.incident == bool(definition.faults)
    assert [(c.entity, c.fault_class) for c in truth.causes] == [
        (c.entity, c.fault_class) for c in definition.ground_truth.causes]
    for cause in truth.causes:
        assert cause.visible_ns is not None, f"{cause.fault_class} never becomes visible"
        assert cause.onset_ns <= cause.visible_ns < truth.start_ns + truth.steps * truth.resolution_ns
        # Visible within the first third of its window at the latest.
        visible_step = truth.step_of(cause.visible_ns)
        start, stop = cause.window
        assert visible_step <= start + (stop - start) // 3


def test_fault_events_are_emitted_at_the_root_cause(scenario: GeneratedScenario) -> None:
    kinds = {}
    for frame in scenario.frames:
        for row in frame.events.to_pylist():
            assert row["kind"] in EVENT_KINDS
            assert frame.header.sent_at_ns - 10**9 * scenario.definition.resolution_s < row["ts_ns"] <= frame.samples.column("ts_ns")[0].as_py()
            kinds.setdefault(row["kind"], set()).add(row["entity"])
    for cause in scenario.truth.causes:
        for kind in CATALOGUE[cause.fault_class].events:
            if kind in ("process_exit", "process_restart"):
                continue  # emitted for the process, not the root-cause entity
            if cause.fault_class == "gpu_xid" or kind in ("gpu_xid",):
                assert cause.entity in kinds.get("gpu_xid", set())
            else:
                assert cause.entity in kinds.get(kind, set()), f"no {kind} event at {cause.entity}"
    if scenario.definition.faults == []:
        assert not {"oom_kill", "gpu_xid", "link_down", "gpu_ecc_dbe"} & set(kinds)


def test_every_batch_passes_the_controllers_row_validation(scenario: GeneratedScenario) -> None:
    # The controller's own vectorised checks (what decode_batch runs on each batch's rows),
    # applied to every row of every batch at once.
    frames = scenario.frames
    _check_rows("samples", scenario.samples)
    _check_rows("processes", pa.concat_tables([f.processes for f in frames]))
    events = [f.events for f in frames if f.events.num_rows]
    if events:
        _check_rows("events", pa.concat_tables(events))
    # Headers: one template, identity fields only vary as the contract says.
    BatchHeader.model_validate(frames[0].header.model_dump())
    assert [f.header.seq for f in frames] == list(range(1, len(frames) + 1))
    sent = np.array([f.header.sent_at_ns for f in frames])
    assert (np.diff(sent) > 0).all()
    assert all(f.header.labels[LAB_LABEL] == scenario.definition.id for f in frames)
    assert all(f.samples.num_rows <= 50_000 and f.processes.num_rows <= 5_000 for f in frames)
    # Self-contained batches: full inventory and capabilities in every one.
    assert all(f.header.inventory is not None and f.header.capabilities for f in frames)


def test_batches_round_trip_through_both_wire_encodings(scenario: GeneratedScenario) -> None:
    frames = scenario.frames
    picks = {0, len(frames) - 1, *range(0, len(frames), max(len(frames) // 4, 1))}
    picks |= {i for i, f in enumerate(frames) if f.events.num_rows}
    for i in sorted(picks)[:12]:
        frame = frames[i]
        digest = batch_digest(frame)
        via_wire = decode_batch(frame_to_wire(frame))
        assert batch_digest(via_wire) == digest
        if i in (0, len(frames) - 1):
            # The pydantic models: the collector's own schema checks, one object per row.
            via_models = decode_batch(encode_batch(frame.to_batch()))
            assert batch_digest(via_models) == digest


def test_metric_names_labels_and_entities_follow_names_py(scenario: GeneratedScenario) -> None:
    for metric, entity, labels, _, _ in _series(scenario):
        spec = METRICS_BY_NAME[metric]
        assert set(labels) == set(spec.labels), metric
        assert entity.split("/", 1)[0] == spec.entity, (metric, entity)
    values = scenario.samples.column("value").to_numpy()
    assert np.isfinite(values).all()
