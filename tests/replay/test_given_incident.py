"""The optional ``incident_id`` of a recorded run (``sreagent.run/v1``): the controller gives
its runs an incident id, the analyzer names the incident after it, and replay must give the
same id back; packages recorded without it read back unchanged."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from sreagent.chain import ReplayActivities
from sreagent.evidence import EvidencePackage
from sreagent.replay import Replayer, RunInputs, compare, package_views, record_run, run_chain

GOLDEN = Path(__file__).resolve().parents[2] / "replays" / "01_cpu_saturation_runaway"
TABLES = ("batches", "samples", "processes", "events")


def test_a_package_without_the_field_reads_back_byte_for_byte() -> None:
    config = json.loads((GOLDEN / "config.json").read_text())
    inputs = RunInputs.from_config(config)
    assert inputs.incident_id is None
    assert "incident_id" not in inputs.to_config()
    assert json.dumps(inputs.to_config(), sort_keys=True) == \
        json.dumps(config["run"], sort_keys=True)


def test_a_given_incident_id_is_recorded_and_replays_identically(tmp_path: Path) -> None:
    golden = EvidencePackage(GOLDEN)
    base = RunInputs.from_config(golden.config)
    given = replace(base, run_id="run-given-incident", incident_id="inc-controller-42")
    view, verify_view = package_views(golden, given)
    result = run_chain(given, view, verify_view,
                       activities=ReplayActivities(golden.activities))
    finding = result.artifacts[1]
    assert finding.incident_id == "inc-controller-42"
    assert len(result.artifacts) == 8  # an incident opened: the whole chain ran

    package = tmp_path / "given"
    record_run(package, inputs=given, result=result, source="test",
               tables={name: golden.table(name) for name in TABLES})
    recorded = EvidencePackage(package)
    assert recorded.config["run"]["incident_id"] == "inc-controller-42"
    assert RunInputs.from_config(recorded.config) == given

    again = Replayer().replay(package)
    assert again.identical, again.first_divergence and again.first_divergence.describe()

    # Without the recorded id the analyzer derives its own: the finding is the first to differ.
    derived = run_chain(replace(given, incident_id=None), view, verify_view,
                        activities=ReplayActivities(recorded.activities))
    first = compare(recorded.artifacts, derived.artifacts)[0]
    assert (first.position, first.kind) == (1, "anomaly_finding")
    assert any(f.path == "incident_id" for f in first.fields)
