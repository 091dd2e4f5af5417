"""The workflow-engine adapter, the evidence view, and the pinned public API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

import sreagent.chain
import sreagent.roles
import sreagent.runtime
from sreagent.artifacts import ArtifactKind
from sreagent.chain import Chain, EvidenceView, RoleChain, artifact_ids
from sreagent.errors import BadInput
from sreagent.evidence import write_package
from sreagent.evidence.package import EvidencePackage

from . import windows


@dataclass
class _Evidence:
    host: str
    start_ns: int
    end_ns: int
    tables: dict[str, pa.Table]

    def table(self, name: str) -> pa.Table:
        return self.tables[name]


@dataclass
class _StepContext:
    run_id: str
    incident_id: str
    approval: str | None = None

    def activity(self, kind: str, key: str, request: dict[str, Any], effect: Any) -> Any:
        return effect()


def _package_tables(tmp_path: Path, frames: list[Any]) -> dict[str, pa.Table]:
    write_package(tmp_path / "pkg", run_id="r", source="lab", config={}, frames=frames)
    pkg = EvidencePackage(tmp_path / "pkg")
    return {n: pkg.table(n) for n in ("batches", "samples", "processes", "events")}


def test_view_from_package_tables_equals_view_from_frames(tmp_path: Path) -> None:
    frames = windows.cpu_saturation().frames()
    a = EvidenceView.from_frames(frames)
    b = EvidenceView.from_tables(_package_tables(tmp_path, frames))
    assert sorted(a.series) == sorted(b.series)
    assert a.inventory == b.inventory and a.batch_ids == b.batch_ids
    assert artifact_ids(Chain().run(a).artifacts) == artifact_ids(Chain().run(b).artifacts)


def test_view_refuses_ambiguous_or_missing_hosts() -> None:
    import pytest

    frames = windows.quiet().frames()
    with pytest.raises(BadInput, match="not in the telemetry"):
        EvidenceView.from_frames(frames, host="other")
    with pytest.raises(BadInput, match="ends before it starts"):
        EvidenceView.from_frames(frames, start_ns=10**19 // 10, end_ns=1)


def test_role_chain_steps_for_the_workflow_engine(tmp_path: Path) -> None:
    frames = windows.cpu_saturation().frames()
    view = EvidenceView.from_frames(frames)
    evidence = _Evidence(view.host, view.start_ns, view.end_ns, _package_tables(tmp_path, frames))
    chain = RoleChain()
    ctx = _StepContext(run_id="run-engine", incident_id="inc-from-controller")
    artifacts: list[Any] = []
    for step in chain.steps:
        assert step.needs_approval(artifacts, ctx) is False  # default posture: dry run
        artifacts.append(step.run(artifacts, evidence, ctx))
    assert [a.kind for a in artifacts] == list(ArtifactKind)
    assert {a.incident_id for a in artifacts[1:]} == {"inc-from-controller"}
    assert artifacts[2].payload.hypotheses[0].fault_class == "cpu_saturation"


EXPECTED_EXPORTS = {
    sreagent.roles: {"FAULT_CLASSES", "HYPOTHESIS_CATALOGUE", "NO_INCIDENT", "FaultClass",
                     "IncidentMemory", "PastIncident", "RunbookIndex", "detect", "execute",
                     "gate", "hypothesise", "idempotency_key", "lab_verdict", "observe",
                     "past_incident", "plan", "remember", "signature_of", "verify"},
    sreagent.chain: {"DEFAULT_RUNBOOKS", "ActivityNotRecorded", "Chain", "ChainConfig",
                     "ChainResult", "EvidenceView", "LiveActivities", "ReplayActivities",
                     "RoleChain", "artifact_ids", "live_activities", "load_runbooks",
                     "run_id_for"},
}


def test_public_api_is_pinned() -> None:
    for module, names in EXPECTED_EXPORTS.items():
        assert set(module.__all__) == names, module.__name__
        for name in names:
            assert hasattr(module, name)
    assert "forbid_effects" in sreagent.runtime.__all__


def test_catalogue_names_are_the_scenario_librarys_fault_classes() -> None:
    from sreagent.scenarios import FaultClass

    assert {f.name for f in sreagent.roles.HYPOTHESIS_CATALOGUE} == {c.value for c in FaultClass}
