"""The artifact contract: a frozen envelope with one typed payload per role.

Every role emits exactly one artifact. ``artifact_id`` is the SHA-256 of the canonical JSON of
the envelope without its own id, so equal content means equal id, on any machine, and a
replay can compare runs id by id. ``logical_time`` is telemetry time (ns since the Unix epoch),
never the wall clock. docs/formats.md documents every field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

from sreagent.canonical import canonical_digest, canonical_json

ENVELOPE_VERSION: Literal["sreagent.artifact/v1"] = "sreagent.artifact/v1"

Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Short = Annotated[str, StringConstraints(max_length=1024)]
Long = Annotated[str, StringConstraints(max_length=16_384)]
TimeNs = Annotated[int, Field(ge=0, lt=2**63)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


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
    """Entity of the rows."""
    metric: Name
    """Metric name, or ``event:<kind>`` for an event."""
    start_ns: TimeNs
    """Start of the time range (inclusive)."""
    end_ns: TimeNs
    """End of the time range (inclusive)."""
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
    """Metric name."""
    entity: Name
    """Entity."""
    count: Annotated[int, Field(ge=0)]
    """Samples in the window."""
    last: Finite
    """Newest value."""
    mean: Finite
    """Mean."""
    minimum: Finite
    """Smallest value."""
    maximum: Finite
    """Largest value."""
    p95: Finite
    """95th percentile."""


class DataQuality(_Frozen):
    sample_count: Annotated[int, Field(ge=0)]
    """Samples seen."""
    expected_samples: Annotated[int, Field(ge=0)]
    """Samples expected from the resolution and the series."""
    staleness_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    """Seconds from the newest sample to the window's end."""
    gaps: Annotated[int, Field(ge=0)]
    """Intervals with no batch where one was expected."""
    source_modes: dict[Name, Literal["kernel", "fallback", "off"]] = {}
    """Mode of every source in the newest batch."""
    partial: bool = False
    """True when a source was off or data is missing."""


class ObservationSummary(_Frozen):
    kind: Literal["observation_summary"] = "observation_summary"
    """Payload discriminator."""
    schema_version: Literal["sreagent.observation_summary/v1"] = "sreagent.observation_summary/v1"
    """Payload version."""
    host: Name
    """Host the window is about."""
    window_start_ns: TimeNs
    """First instant of the window."""
    window_end_ns: TimeNs
    """Last instant of the window."""
    resolution_s: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    """Expected seconds between samples."""
    batch_count: Annotated[int, Field(ge=0)]
    """Batches in the window."""
    signals: list[SignalSummary] = []
    """Summary statistics per (metric, entity)."""
    event_counts: dict[Name, int] = {}
    """Events in the window by kind."""
    quality: DataQuality
    """How complete and fresh the window is."""


class Finding(_Frozen):
    detector: Name
    """Which detector fired (``static_threshold``, ``robust_zscore``, ``event``...)."""
    metric: Name
    """Metric (or `event:<kind>`)."""
    entity: Name
    """Entity."""
    onset_ns: TimeNs
    """First sample at which the detector fired."""
    severity: Literal["info", "warning", "error", "critical"]
    """Severity."""
    score: Finite
    """Detector score (z-score, ratio over threshold...)."""
    value: Finite
    """The value that fired."""
    baseline: Finite | None = None
    """Baseline the value was compared with."""
    threshold: Finite | None = None
    """Threshold crossed."""
    direction: Literal["up", "down", "event"] = "up"
    """Which way the signal moved."""


class IncidentState(_Frozen):
    incident_id: Name
    """Incident id."""
    fingerprint: Name
    """Signal fingerprint used for grouping and similarity."""
    state: Literal["opened", "updated", "closed", "none"]
    """What happened to the incident in this window."""


class AnomalyFinding(_Frozen):
    kind: Literal["anomaly_finding"] = "anomaly_finding"
    """Payload discriminator."""
    schema_version: Literal["sreagent.anomaly_finding/v1"] = "sreagent.anomaly_finding/v1"
    """Payload version."""
    risk_level: Literal["none", "low", "medium", "high", "critical"]
    """Overall risk of the window."""
    findings: list[Finding] = []
    """What each detector found."""
    incident: IncidentState | None = None
    """Incident opened, updated or closed by these findings."""
    summary: Short = ""
    """One-line summary."""


class Hypothesis(_Frozen):
    rank: Annotated[int, Field(ge=1)]
    """1 is the most likely."""
    fault_class: Name
    """From the hypothesis catalogue (``cpu_saturation``, ``cgroup_cpu_throttling``...)."""
    entity: Name
    """The entity blamed."""
    entity_kind: Literal[
        "host", "process", "cgroup", "disk", "filesystem", "nic", "gpu", "link", "service", "other"
    ]
    """Kind of that entity."""
    title: Short
    """One-line statement."""
    score: Finite
    """Ranking score."""
    confidence: Unit
    """Calibrated confidence in [0, 1]."""
    features: dict[Name, Finite] = {}
    """The score's inputs, by name, so the ranking can be audited."""
    evidence_refs: list[EvidenceRef] = []
    """Telemetry supporting it."""
    counter_evidence: list[Short] = []
    """Observations that argue against it."""
    next_diagnostics: list[Short] = []
    """What to check next to confirm or refute it."""
    runbook_refs: list[Name] = []
    """Runbooks retrieved for it (paths under the runbook folder)."""


class RootCauseHypothesis(_Frozen):
    kind: Literal["root_cause_hypothesis"] = "root_cause_hypothesis"
    """Payload discriminator."""
    schema_version: Literal["sreagent.root_cause_hypothesis/v1"] = (
        "sreagent.root_cause_hypothesis/v1"
    )
    """Payload version."""
    hypotheses: list[Hypothesis] = []
    """Ranked hypotheses, best first."""
    ranked_by: Name = "deterministic"
    """``deterministic``, or ``model:<name>`` when a language model re-ranked them."""


SafetyClass = Literal["read_only", "safe_reversible", "impacting", "destructive"]


class ProposedAction(_Frozen):
    action_id: Name
    """Id of this proposal within the run."""
    action: Name
    """Catalogue name (``renice_process``, ``raise_cgroup_cpu_quota``...)."""
    target: Name
    """What it acts on (a pid, a cgroup path, a device)."""
    safety_class: SafetyClass
    """`read_only`, `safe_reversible`, `impacting` or `destructive`."""
    parameters: dict[Name, Short] = {}
    """Action parameters."""
    rationale: Short = ""
    """Why this action for this hypothesis."""
    rollback: Short = ""
    """How to undo it; empty only for read-only actions."""
    expected_metric: Name
    """The metric that should move if it works."""
    expected_entity: Name
    """Entity of that metric."""
    expected_direction: Literal["down", "up"]
    """Which way it should move."""
    hypothesis_rank: Annotated[int, Field(ge=1)]
    """Rank of the hypothesis it addresses."""
    runbook_refs: list[Name] = []
    """Runbooks that describe it."""


class RemediationProposal(_Frozen):
    kind: Literal["remediation_proposal"] = "remediation_proposal"
    """Payload discriminator."""
    schema_version: Literal["sreagent.remediation_proposal/v1"] = "sreagent.remediation_proposal/v1"
    """Payload version."""
    actions: list[ProposedAction] = []
    """Proposed actions, best first."""
    summary: Short = ""
    """One-line summary."""


class Posture(_Frozen):
    dry_run: bool = True
    """Record commands without running them."""
    require_approval: bool = True
    """Wait for an operator's approval before running."""
    blocked_classes: list[SafetyClass] = ["impacting", "destructive"]
    """Safety classes that never run."""
    target_allowlist: list[Name] = []
    """Targets (glob patterns) actions may touch; empty means none beyond read-only."""


class PlanDecision(_Frozen):
    action_id: Name
    """The proposed action."""
    idempotency_key: Name
    """Key over (action, target, incident): one execution per key."""
    decision: Literal["allowed", "dry_run", "approval_required", "blocked"]
    """What the gate decided."""
    reasons: list[Short] = []
    """Why, as data."""
    command: list[Short] = []
    """The exact argv the executor would run."""


class ExecutionPlan(_Frozen):
    kind: Literal["execution_plan"] = "execution_plan"
    """Payload discriminator."""
    schema_version: Literal["sreagent.execution_plan/v1"] = "sreagent.execution_plan/v1"
    """Payload version."""
    posture: Posture
    """The posture the gate applied."""
    decisions: list[PlanDecision] = []
    """One decision per proposed action."""


class ActionResult(_Frozen):
    action_id: Name
    """The action."""
    idempotency_key: Name
    """Its idempotency key."""
    outcome: Literal["executed", "dry_run", "skipped", "failed", "blocked", "pending_approval"]
    """What happened."""
    command: list[Short] = []
    """The argv that ran (or would have run)."""
    exit_code: int | None = None
    """Exit status when it ran."""
    output: Long = ""
    """Captured output, cut at 16 KiB."""
    activity_id: Name | None = None
    """The recorded activity that ran it (replay feeds its result back)."""


class ExecutionResult(_Frozen):
    kind: Literal["execution_result"] = "execution_result"
    """Payload discriminator."""
    schema_version: Literal["sreagent.execution_result/v1"] = "sreagent.execution_result/v1"
    """Payload version."""
    results: list[ActionResult] = []
    """One result per decision."""


class Verdict(_Frozen):
    action_id: Name
    """The action verified."""
    metric: Name
    """Metric compared."""
    entity: Name
    """Entity compared."""
    verdict: Literal["improved", "not_improved", "inconclusive"]
    """Outcome; `improved` only with evidence."""
    test: Name
    """The statistical test used (``mann_whitney_u``...)."""
    statistic: Finite | None = None
    """Test statistic."""
    p_value: Unit | None = None
    """p-value of the test."""
    effect_size: Finite | None = None
    """Effect size (difference of means over pooled spread, or the test's own)."""
    before_mean: Finite | None = None
    """Mean before the action."""
    after_mean: Finite | None = None
    """Mean after."""
    before_n: Annotated[int, Field(ge=0)] = 0
    """Samples before."""
    after_n: Annotated[int, Field(ge=0)] = 0
    """Samples after."""
    reason: Short = ""
    """Why this verdict (e.g. the after window is too short)."""


class VerificationResult(_Frozen):
    kind: Literal["verification_result"] = "verification_result"
    """Payload discriminator."""
    schema_version: Literal["sreagent.verification_result/v1"] = "sreagent.verification_result/v1"
    """Payload version."""
    overall: Literal["improved", "not_improved", "inconclusive", "nothing_executed"]
    """Verdict over all actions."""
    verdicts: list[Verdict] = []
    """One verdict per executed action."""


class TimelineEntry(_Frozen):
    ts_ns: TimeNs
    """When."""
    what: Short
    """What happened."""
    artifact_kind: ArtifactKind | None = None
    """The artifact that recorded it, if any."""


class SimilarIncident(_Frozen):
    incident_id: Name
    """The past incident."""
    fault_class: Name
    """Its fault class."""
    similarity: Unit
    """Fingerprint similarity in [0, 1]."""


class IncidentReport(_Frozen):
    kind: Literal["incident_report"] = "incident_report"
    """Payload discriminator."""
    schema_version: Literal["sreagent.incident_report/v1"] = "sreagent.incident_report/v1"
    """Payload version."""
    title: Short
    """Report title."""
    severity: Literal["none", "low", "medium", "high", "critical"]
    """Severity."""
    summary: Long = ""
    """Narrative summary."""
    fingerprint: Name
    """Signal fingerprint."""
    timeline: list[TimelineEntry] = []
    """What happened, in telemetry time."""
    top_hypotheses: list[Hypothesis] = []
    """The best hypotheses with their evidence."""
    actions: list[ActionResult] = []
    """What was executed or dry-run."""
    verification: Literal["improved", "not_improved", "inconclusive", "nothing_executed"]
    """Overall verification verdict."""
    open_questions: list[Short] = []
    """What the evidence could not settle."""
    similar_incidents: list[SimilarIncident] = []
    """Similar past incidents from incident memory."""
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
    """Envelope version."""
    artifact_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    """SHA-256 of the canonical JSON of this envelope without ``artifact_id``."""
    kind: ArtifactKind
    """Which of the eight kinds this is; equals `payload.kind`."""
    run_id: Name
    """The workflow run that produced it."""
    incident_id: Name
    """The incident the run is about."""
    correlation_id: Name
    """Joins artifacts across runs and systems (defaults to the run id)."""
    producer: Name
    """Role that produced it."""
    consumer: Name
    """Role that consumes it next."""
    logical_time: TimeNs
    """Telemetry time this artifact speaks for (ns since the epoch); never the wall clock."""
    status: ArtifactStatus
    """How the producing role finished."""
    input_artifact_ids: list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]] = []
    """Ids of the artifacts this one was computed from."""
    evidence_refs: list[EvidenceRef] = []
    """The raw telemetry this artifact relies on."""
    replayable: bool = True
    """False when re-running the role cannot reproduce it (it is fed back instead)."""
    recorded_activity_ids: list[Name] = []
    """Activities (executions, model calls) whose recorded results this artifact used."""
    payload: Payload
    """The kind's typed content (below)."""

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Artifact:
        if self.payload.kind != self.kind.value:
            raise ValueError(
                f"payload kind {self.payload.kind!r} does not match kind {self.kind!r}"
            )
        if info.context is _ID_PENDING:
            # make_artifact validates the content first and then sets the id to the hash of
            # exactly this content; every other way in (storage, packages, the API) is checked.
            return self
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


_ID_PENDING: dict[str, Any] = {"artifact_id": "pending"}
"""Validation context of make_artifact's draft; compared by identity, so no input can forge it."""
_PLACEHOLDER_ID = "0" * 64


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
    # The content is validated once (the payload and evidence refs as the models they already
    # are) with a placeholder id; the id is then the hash of this artifact's own canonical
    # JSON, serialised and hashed once. Whenever the former way (hash the dumped body, then
    # validate it and check the id by dumping and hashing again) succeeded, the id and the
    # bytes are the same; the check stays on every artifact read back from anywhere.
    draft = Artifact.model_validate({
        "schema_version": ENVELOPE_VERSION,
        "artifact_id": _PLACEHOLDER_ID,
        "kind": kind,
        "run_id": run_id,
        "incident_id": incident_id,
        "correlation_id": correlation_id or run_id,
        "producer": producer,
        "consumer": consumer,
        "logical_time": logical_time,
        "status": ArtifactStatus(status),
        "input_artifact_ids": list(input_artifact_ids or []),
        "evidence_refs": list(evidence_refs or []),
        "replayable": replayable,
        "recorded_activity_ids": list(recorded_activity_ids or []),
        "payload": payload_model,
    }, context=_ID_PENDING)
    artifact_id = compute_artifact_id(draft.model_dump(mode="json", exclude={"artifact_id"}))
    return draft.model_copy(update={"artifact_id": artifact_id})
