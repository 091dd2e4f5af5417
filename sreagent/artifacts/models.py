"""The artifact contract: a frozen envelope with one typed payload per role.

Every role emits exactly one artifact. ``artifact_id`` is the SHA-256 of the canonical JSON of
the envelope without its own id, so equal content means equal id, on any machine, and a
replay can compare runs id by id. ``logical_time`` is telemetry time (ns since the Unix epoch),
never the wall clock. docs/formats.md documents every field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from sreagent.canonical import canonical_digest, canonical_json

ENVELOPE_VERSION = "sreagent.artifact/v1"

Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Short = Annotated[str, StringConstraints(max_length=1024)]
Long = Annotated[str, StringConstraints(max_length=16_384)]
TimeNs = Annotated[int, Field(ge=0, lt=2**63)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ArtifactKind(StrEnum):
    """The eight kinds, in chain order."""

    OBSERVATION_SUMMARY = "observation_summary"
    ANOMALY_FINDING = "anomaly_finding"
    ROOT_CAUSE_HYPOTHESIS = "root_cause_hypothesis"
    REMEDIATION_PROPOSAL = "remediation_proposal"
    EXECUTION_PLAN = "execution_plan"
    EXECUTION_RESULT = "execution_result"
    VERIFICATION_RESULT = "verification_result"
    INCIDENT_REPORT = "incident_report"


class ArtifactStatus(StrEnum):
    """How the producing role finished, as data (never an exception)."""

    OK = "ok"
    NO_DATA = "no_data"
    DEGRADED = "degraded"
    APPROVAL_REQUIRED = "approval_required"
    BLOCKED = "blocked"
    FAILED = "failed"


class EvidenceRef(_Frozen):
    """Enough to reload the raw rows an artifact relies on."""

    entity: Name
    metric: Name
    """Metric name, or ``event:<kind>`` for an event."""
    start_ns: TimeNs
    end_ns: TimeNs
    batch_ids: list[Name] = []
    """Batches (``collector_id/producer_epoch/seq``) holding the rows."""

    @model_validator(mode="after")
    def _ordered(self) -> EvidenceRef:
        if self.end_ns < self.start_ns:
            raise ValueError("end_ns is before start_ns")
        return self


# --- payloads --------------------------------------------------------------------------------


class SignalSummary(_Frozen):
    metric: Name
    entity: Name
    count: Annotated[int, Field(ge=0)]
    last: Finite
    mean: Finite
    minimum: Finite
    maximum: Finite
    p95: Finite


class DataQuality(_Frozen):
    sample_count: Annotated[int, Field(ge=0)]
    expected_samples: Annotated[int, Field(ge=0)]
    staleness_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    """Seconds from the newest sample to the window's end."""
    gaps: Annotated[int, Field(ge=0)]
    """Intervals with no batch where one was expected."""
    source_modes: dict[Name, Literal["kernel", "fallback", "off"]] = {}
    partial: bool = False


class ObservationSummary(_Frozen):
    kind: Literal["observation_summary"] = "observation_summary"
    schema_version: Literal["sreagent.observation_summary/v1"] = "sreagent.observation_summary/v1"
    host: Name
    window_start_ns: TimeNs
    window_end_ns: TimeNs
    resolution_s: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    batch_count: Annotated[int, Field(ge=0)]
    signals: list[SignalSummary] = []
    event_counts: dict[Name, int] = {}
    quality: DataQuality


class Finding(_Frozen):
    detector: Name
    """Which detector fired (``static_threshold``, ``robust_zscore``, ``event``...)."""
    metric: Name
    entity: Name
    onset_ns: TimeNs
    severity: Literal["info", "warning", "error", "critical"]
    score: Finite
    value: Finite
    baseline: Finite | None = None
    threshold: Finite | None = None
    direction: Literal["up", "down", "event"] = "up"


class IncidentState(_Frozen):
    incident_id: Name
    fingerprint: Name
    state: Literal["opened", "updated", "closed", "none"]


class AnomalyFinding(_Frozen):
    kind: Literal["anomaly_finding"] = "anomaly_finding"
    schema_version: Literal["sreagent.anomaly_finding/v1"] = "sreagent.anomaly_finding/v1"
    risk_level: Literal["none", "low", "medium", "high", "critical"]
    findings: list[Finding] = []
    incident: IncidentState | None = None
    summary: Short = ""


class Hypothesis(_Frozen):
    rank: Annotated[int, Field(ge=1)]
    fault_class: Name
    """From the hypothesis catalogue (``cpu_saturation``, ``cgroup_cpu_throttling``...)."""
    entity: Name
    entity_kind: Literal["host", "process", "cgroup", "disk", "filesystem", "nic", "gpu", "link",
                         "service", "other"]
    title: Short
    score: Finite
    confidence: Unit
    features: dict[Name, Finite] = {}
    """The score's inputs, by name, so the ranking can be audited."""
    evidence_refs: list[EvidenceRef] = []
    counter_evidence: list[Short] = []
    next_diagnostics: list[Short] = []
    runbook_refs: list[Name] = []


class RootCauseHypothesis(_Frozen):
    kind: Literal["root_cause_hypothesis"] = "root_cause_hypothesis"
    schema_version: Literal["sreagent.root_cause_hypothesis/v1"] = (
        "sreagent.root_cause_hypothesis/v1"
    )
    hypotheses: list[Hypothesis] = []
    ranked_by: Name = "deterministic"
    """``deterministic``, or ``model:<name>`` when a language model re-ranked them."""


SafetyClass = Literal["read_only", "safe_reversible", "impacting", "destructive"]


class ProposedAction(_Frozen):
    action_id: Name
    action: Name
    """Catalogue name (``renice_process``, ``raise_cgroup_cpu_quota``...)."""
    target: Name
    safety_class: SafetyClass
    parameters: dict[Name, Short] = {}
    rationale: Short = ""
    rollback: Short = ""
    """How to undo it; empty only for read-only actions."""
    expected_metric: Name
    expected_entity: Name
    expected_direction: Literal["down", "up"]
    hypothesis_rank: Annotated[int, Field(ge=1)]
    runbook_refs: list[Name] = []


class RemediationProposal(_Frozen):
    kind: Literal["remediation_proposal"] = "remediation_proposal"
    schema_version: Literal["sreagent.remediation_proposal/v1"] = (
        "sreagent.remediation_proposal/v1"
    )
    actions: list[ProposedAction] = []
    summary: Short = ""


class Posture(_Frozen):
    dry_run: bool = True
    require_approval: bool = True
    blocked_classes: list[SafetyClass] = ["impacting", "destructive"]
    target_allowlist: list[Name] = []
    """Targets (glob patterns) actions may touch; empty means none beyond read-only."""


class PlanDecision(_Frozen):
    action_id: Name
    idempotency_key: Name
    decision: Literal["allowed", "dry_run", "approval_required", "blocked"]
    reasons: list[Short] = []
    command: list[Short] = []
    """The exact argv the executor would run."""


class ExecutionPlan(_Frozen):
    kind: Literal["execution_plan"] = "execution_plan"
    schema_version: Literal["sreagent.execution_plan/v1"] = "sreagent.execution_plan/v1"
    posture: Posture
    decisions: list[PlanDecision] = []


class ActionResult(_Frozen):
    action_id: Name
    idempotency_key: Name
    outcome: Literal["executed", "dry_run", "skipped", "failed", "blocked", "pending_approval"]
    command: list[Short] = []
    exit_code: int | None = None
    output: Long = ""
    activity_id: Name | None = None
    """The recorded activity that ran it (replay feeds its result back)."""


class ExecutionResult(_Frozen):
    kind: Literal["execution_result"] = "execution_result"
    schema_version: Literal["sreagent.execution_result/v1"] = "sreagent.execution_result/v1"
    results: list[ActionResult] = []


class Verdict(_Frozen):
    action_id: Name
    metric: Name
    entity: Name
    verdict: Literal["improved", "not_improved", "inconclusive"]
    test: Name
    """The statistical test used (``mann_whitney_u``...)."""
    statistic: Finite | None = None
    p_value: Unit | None = None
    effect_size: Finite | None = None
    before_mean: Finite | None = None
    after_mean: Finite | None = None
    before_n: Annotated[int, Field(ge=0)] = 0
    after_n: Annotated[int, Field(ge=0)] = 0
    reason: Short = ""


class VerificationResult(_Frozen):
    kind: Literal["verification_result"] = "verification_result"
    schema_version: Literal["sreagent.verification_result/v1"] = (
        "sreagent.verification_result/v1"
    )
    overall: Literal["improved", "not_improved", "inconclusive", "nothing_executed"]
    verdicts: list[Verdict] = []


class TimelineEntry(_Frozen):
    ts_ns: TimeNs
    what: Short
    artifact_kind: ArtifactKind | None = None


class SimilarIncident(_Frozen):
    incident_id: Name
    fault_class: Name
    similarity: Unit


class IncidentReport(_Frozen):
    kind: Literal["incident_report"] = "incident_report"
    schema_version: Literal["sreagent.incident_report/v1"] = "sreagent.incident_report/v1"
    title: Short
    severity: Literal["none", "low", "medium", "high", "critical"]
    summary: Long = ""
    fingerprint: Name
    timeline: list[TimelineEntry] = []
    top_hypotheses: list[Hypothesis] = []
    actions: list[ActionResult] = []
    verification: Literal["improved", "not_improved", "inconclusive", "nothing_executed"]
    open_questions: list[Short] = []
    similar_incidents: list[SimilarIncident] = []
    narrative_by: Name = "template"
    """``template``, or ``model:<name>`` when a language model wrote the summary."""


Payload = Annotated[
    ObservationSummary
    | AnomalyFinding
    | RootCauseHypothesis
    | RemediationProposal
    | ExecutionPlan
    | ExecutionResult
    | VerificationResult
    | IncidentReport,
    Field(discriminator="kind"),
]

PAYLOAD_TYPES: dict[ArtifactKind, type[BaseModel]] = {
    ArtifactKind.OBSERVATION_SUMMARY: ObservationSummary,
    ArtifactKind.ANOMALY_FINDING: AnomalyFinding,
    ArtifactKind.ROOT_CAUSE_HYPOTHESIS: RootCauseHypothesis,
    ArtifactKind.REMEDIATION_PROPOSAL: RemediationProposal,
    ArtifactKind.EXECUTION_PLAN: ExecutionPlan,
    ArtifactKind.EXECUTION_RESULT: ExecutionResult,
    ArtifactKind.VERIFICATION_RESULT: VerificationResult,
    ArtifactKind.INCIDENT_REPORT: IncidentReport,
}

#: Producer and consumer role of each kind, in chain order.
CHAIN: dict[ArtifactKind, tuple[str, str]] = {
    ArtifactKind.OBSERVATION_SUMMARY: ("observer", "analyzer"),
    ArtifactKind.ANOMALY_FINDING: ("analyzer", "planner"),
    ArtifactKind.ROOT_CAUSE_HYPOTHESIS: ("analyzer", "planner"),
    ArtifactKind.REMEDIATION_PROPOSAL: ("planner", "policy_gate"),
    ArtifactKind.EXECUTION_PLAN: ("policy_gate", "executor"),
    ArtifactKind.EXECUTION_RESULT: ("executor", "verifier"),
    ArtifactKind.VERIFICATION_RESULT: ("verifier", "memory"),
    ArtifactKind.INCIDENT_REPORT: ("memory", "operator"),
}


class Artifact(_Frozen):
    """The envelope around every role's output."""

    schema_version: Literal["sreagent.artifact/v1"] = ENVELOPE_VERSION
    artifact_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    """SHA-256 of the canonical JSON of this envelope without ``artifact_id``."""
    kind: ArtifactKind
    run_id: Name
    incident_id: Name
    correlation_id: Name
    producer: Name
    consumer: Name
    logical_time: TimeNs
    """Telemetry time this artifact speaks for (ns since the epoch); never the wall clock."""
    status: ArtifactStatus
    input_artifact_ids: list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]] = []
    evidence_refs: list[EvidenceRef] = []
    replayable: bool = True
    """False when re-running the role cannot reproduce it (it is fed back instead)."""
    recorded_activity_ids: list[Name] = []
    """Activities (executions, model calls) whose recorded results this artifact used."""
    payload: Payload

    @model_validator(mode="after")
    def _consistent(self) -> Artifact:
        if self.payload.kind != self.kind.value:
            raise ValueError(f"payload kind {self.payload.kind!r} does not match kind {self.kind!r}")
        expected = compute_artifact_id(self.model_dump(mode="json", exclude={"artifact_id"}))
        if self.artifact_id != expected:
            raise ValueError(
                f"artifact_id {self.artifact_id} is not the content hash {expected}; "
                "an artifact was edited after it was made"
            )
        return self

    def canonical(self) -> bytes:
        """The canonical JSON bytes of the whole envelope (what goldens pin)."""
        return canonical_json(self.model_dump(mode="json"))


def compute_artifact_id(envelope_without_id: dict[str, Any]) -> str:
    """The content hash of an envelope given as JSON-ready data without ``artifact_id``."""
    return canonical_digest(envelope_without_id)


def make_artifact(
    *,
    kind: ArtifactKind | str,
    run_id: str,
    incident_id: str,
    correlation_id: str | None = None,
    logical_time: int,
    status: ArtifactStatus | str = ArtifactStatus.OK,
    payload: BaseModel | dict[str, Any],
    input_artifact_ids: list[str] | None = None,
    evidence_refs: list[EvidenceRef] | None = None,
    replayable: bool = True,
    recorded_activity_ids: list[str] | None = None,
) -> Artifact:
    """Build an artifact, filling in producer, consumer and the content-hash id."""
    kind = ArtifactKind(kind)
    producer, consumer = CHAIN[kind]
    payload_model = (
        payload if isinstance(payload, BaseModel) else PAYLOAD_TYPES[kind].model_validate(payload)
    )
    body: dict[str, Any] = {
        "schema_version": ENVELOPE_VERSION,
        "kind": kind.value,
        "run_id": run_id,
        "incident_id": incident_id,
        "correlation_id": correlation_id or run_id,
        "producer": producer,
        "consumer": consumer,
        "logical_time": logical_time,
        "status": ArtifactStatus(status).value,
        "input_artifact_ids": list(input_artifact_ids or []),
        "evidence_refs": [r.model_dump(mode="json") for r in evidence_refs or []],
        "replayable": replayable,
        "recorded_activity_ids": list(recorded_activity_ids or []),
        "payload": payload_model.model_dump(mode="json"),
    }
    # The payload is already a validated model, so ``body`` is in normalised form and its
    # hash equals the one the envelope validator recomputes.
    return Artifact.model_validate({**body, "artifact_id": compute_artifact_id(body)})
