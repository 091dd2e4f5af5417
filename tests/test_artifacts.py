"""The artifact contract: content-hash ids, canonical form, round trips, goldens."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sreagent import artifacts as a
from sreagent.canonical import canonical_json
from sreagent.errors import NonFiniteValue
from tests.strategies import model_strategy

T0 = 1_767_225_600_000_000_000
REF = a.EvidenceRef(entity="process/4242", metric="process_cpu_ratio", start_ns=T0, end_ns=T0 + 60 * 10**9,
                    batch_ids=["node-1/e1/1", "node-1/e1/60"])
HYPOTHESIS = a.Hypothesis(
    rank=1, fault_class="cpu_saturation", entity="process/4242", entity_kind="process",
    title="process 4242 (spin) saturates the CPUs", score=0.91, confidence=0.82,
    features={"cpu_share": 0.97, "z_score": 11.5}, evidence_refs=[REF],
    counter_evidence=["no cgroup throttling"], next_diagnostics=["perf top -p 4242"],
    runbook_refs=["docs/runbooks/cpu_saturation.md"],
)
ACTION = a.ActionResult(action_id="act-1", idempotency_key="renice:process/4242:inc-1",
                        outcome="dry_run", command=["renice", "-n", "10", "-p", "4242"])

PAYLOADS: dict[a.ArtifactKind, object] = {
    a.ArtifactKind.OBSERVATION_SUMMARY: a.ObservationSummary(
        host="node-1", window_start_ns=T0, window_end_ns=T0 + 900 * 10**9, resolution_s=1.0,
        batch_count=900,
        signals=[a.SignalSummary(metric="cpu_utilisation_ratio", entity="host", count=900,
                                 last=0.98, mean=0.61, minimum=0.2, maximum=0.99, p95=0.98)],
        event_counts={"oom_kill": 0},
        quality=a.DataQuality(sample_count=2700, expected_samples=2700, staleness_s=0.0, gaps=0,
                              source_modes={"cpu": "kernel", "ebpf": "off"}, partial=True),
    ),
    a.ArtifactKind.ANOMALY_FINDING: a.AnomalyFinding(
        risk_level="high",
        findings=[a.Finding(detector="robust_zscore", metric="cpu_utilisation_ratio", entity="host",
                            onset_ns=T0 + 600 * 10**9, severity="error", score=11.5, value=0.98,
                            baseline=0.25, threshold=0.9)],
        incident=a.IncidentState(incident_id="inc-1", fingerprint="cpu:host", state="opened"),
        summary="CPU saturated since 10:00",
    ),
    a.ArtifactKind.ROOT_CAUSE_HYPOTHESIS: a.RootCauseHypothesis(hypotheses=[HYPOTHESIS]),
    a.ArtifactKind.REMEDIATION_PROPOSAL: a.RemediationProposal(
        actions=[a.ProposedAction(action_id="act-1", action="renice_process", target="process/4242",
                                  safety_class="safe_reversible", parameters={"niceness": "10"},
                                  rationale="lower the runaway's priority",
                                  rollback="renice -n 0 -p 4242",
                                  expected_metric="cpu_utilisation_ratio", expected_entity="host",
                                  expected_direction="down", hypothesis_rank=1)],
        summary="renice the runaway process",
    ),
    a.ArtifactKind.EXECUTION_PLAN: a.ExecutionPlan(
        posture=a.Posture(),
        decisions=[a.PlanDecision(action_id="act-1", idempotency_key="renice:process/4242:inc-1",
                                  decision="dry_run", reasons=["dry_run is on"],
                                  command=["renice", "-n", "10", "-p", "4242"])],
    ),
    a.ArtifactKind.EXECUTION_RESULT: a.ExecutionResult(results=[ACTION]),
    a.ArtifactKind.VERIFICATION_RESULT: a.VerificationResult(overall="nothing_executed"),
    a.ArtifactKind.INCIDENT_REPORT: a.IncidentReport(
        title="CPU saturation on node-1", severity="high", summary="A process saturated the CPUs.",
        fingerprint="cpu:host",
        timeline=[a.TimelineEntry(ts_ns=T0 + 600 * 10**9, what="CPU above 90 %",
                                  artifact_kind=a.ArtifactKind.ANOMALY_FINDING)],
        top_hypotheses=[HYPOTHESIS], actions=[ACTION], verification="nothing_executed",
        open_questions=["why did spin start?"],
        similar_incidents=[a.SimilarIncident(incident_id="inc-0", fault_class="cpu_saturation",
                                             similarity=0.8)],
    ),
}


def golden_chain() -> list[a.Artifact]:
    chain: list[a.Artifact] = []
    for kind, payload in PAYLOADS.items():
        chain.append(a.make_artifact(
            kind=kind, run_id="run-1", incident_id="inc-1", logical_time=T0 + 900 * 10**9,
            status="ok", payload=payload,  # type: ignore[arg-type]
            input_artifact_ids=[chain[-1].artifact_id] if chain else [],
            evidence_refs=[REF] if kind is a.ArtifactKind.ROOT_CAUSE_HYPOTHESIS else [],
        ))
    return chain


def test_every_kind_has_a_payload_type_and_a_chain_position() -> None:
    assert set(a.PAYLOAD_TYPES) == set(a.ArtifactKind) == set(a.CHAIN) == set(PAYLOADS)


def test_golden_chain_canonical_bytes_and_ids(golden) -> None:  # type: ignore[no-untyped-def]
    chain = golden_chain()
    for artifact in chain:
        golden(f"artifacts/{artifact.kind.value}.json", artifact.canonical() + b"\n")
    golden("artifacts/ids.txt", "".join(f"{x.kind.value} {x.artifact_id}\n" for x in chain).encode())


def test_id_is_the_hash_of_the_content_without_the_id() -> None:
    artifact = golden_chain()[0]
    body = artifact.model_dump(mode="json", exclude={"artifact_id"})
    assert artifact.artifact_id == a.compute_artifact_id(body)
    edited = {**artifact.model_dump(mode="json"), "logical_time": artifact.logical_time + 1}
    with pytest.raises(ValidationError, match="edited after it was made"):
        a.Artifact.model_validate(edited)


def test_payload_kind_must_match_the_envelope() -> None:
    artifact = golden_chain()[1]
    data = artifact.model_dump(mode="json")
    data["kind"] = "observation_summary"
    with pytest.raises(ValidationError, match="does not match"):
        a.Artifact.model_validate(data)


def test_artifacts_are_frozen() -> None:
    artifact = golden_chain()[0]
    with pytest.raises(ValidationError):
        artifact.run_id = "other"  # type: ignore[misc]


PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", list(a.ArtifactKind))
def test_any_payload_round_trips_through_canonical_json(kind: a.ArtifactKind) -> None:
    @PROPERTY
    @given(payload=model_strategy(a.PAYLOAD_TYPES[kind]), time=st.integers(0, 2**62),
           refs=st.lists(model_strategy(a.EvidenceRef), max_size=2))
    def round_trip(payload, time, refs):  # type: ignore[no-untyped-def]
        artifact = a.make_artifact(kind=kind, run_id="r", incident_id="i", logical_time=time,
                                   payload=payload, evidence_refs=refs)
        again = a.Artifact.model_validate_json(artifact.canonical())
        assert again == artifact
        assert again.canonical() == artifact.canonical()
        assert json.loads(artifact.canonical())["artifact_id"] == artifact.artifact_id

    round_trip()


def test_canonical_json_is_stable_and_rejects_non_finite() -> None:
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'.encode()
    with pytest.raises(NonFiniteValue) as caught:
        canonical_json({"x": [1.0, float("nan")]})
    assert caught.value.field == "$.x[1]"
