"""A minimal, honest built-in chain so the engine runs for real until the roles issue lands.

Five steps, each a pure function of its inputs (no clock, no randomness, no I/O besides the
evidence view and the context's activity):

1. observer -> ``observation_summary``: per-series statistics of the window from the journal.
2. analyzer -> ``anomaly_finding``: the configured static threshold rules applied to the window.
3. policy gate -> ``execution_plan``: one read-only action per finding
   (``capture_diagnostics``), decided ``approval_required`` / ``dry_run`` by the posture.
4. executor -> ``execution_result``: behind the approval gate. It never runs a command: in
   dry-run posture (the only one this chain supports) it records, through an idempotent
   activity, the command it would have run. Rejected actions are ``skipped``.
5. memory -> ``incident_report``: title, severity, timeline, actions.

It has no root-cause analysis and no verification; those are the roles issue's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import pyarrow.compute as pc
from pydantic import BaseModel

from sreagent.artifacts import (
    AnomalyFinding,
    Artifact,
    ArtifactKind,
    ArtifactStatus,
    EvidenceRef,
    ExecutionPlan,
    ExecutionResult,
    ObservationSummary,
    make_artifact,
)
from sreagent.canonical import canonical_digest
from sreagent.controller.workflow import EvidenceView, Step, StepContext

MAX_SIGNALS = 200
SEVERITY_RISK = {"warning": "medium", "error": "high", "critical": "critical"}


P = TypeVar("P", bound=BaseModel)


def _find(inputs: Sequence[Artifact], kind: ArtifactKind, cls: type[P]) -> tuple[Artifact, P]:
    """The newest input artifact of ``kind`` and its typed payload."""
    for artifact in reversed(inputs):
        if artifact.kind == kind:
            assert isinstance(artifact.payload, cls)
            return artifact, artifact.payload
    raise ValueError(f"the chain needs a {kind.value} before this step")


class _Base:
    name = "step"

    def needs_approval(self, inputs: Sequence[Artifact], ctx: StepContext) -> bool:
        return False


class Observer(_Base):
    name = "observer"

    def run(self, inputs: Sequence[Artifact], evidence: EvidenceView, ctx: StepContext) -> Artifact:
        samples = evidence.table("samples")
        events = evidence.table("events")
        batches = evidence.table("batches")
        signals: list[dict[str, Any]] = []
        newest = ctx.window[0]
        if samples.num_rows:
            newest = int(pc.max(samples.column("ts_ns")).as_py())
            grouped = (
                samples.group_by(["metric", "entity"])
                .aggregate(
                    [
                        ("value", "count"),
                        ("value", "mean"),
                        ("value", "min"),
                        ("value", "max"),
                        ("value", "list"),
                        ("ts_ns", "max"),
                    ]
                )
                .sort_by([("metric", "ascending"), ("entity", "ascending")])
            )
            for row in grouped.slice(0, MAX_SIGNALS).to_pylist():
                values = np.asarray(row["value_list"], dtype=float)
                signals.append(
                    {
                        "metric": row["metric"],
                        "entity": row["entity"],
                        "count": int(row["value_count"]),
                        "last": float(values[-1]),
                        "mean": float(row["value_mean"]),
                        "minimum": float(row["value_min"]),
                        "maximum": float(row["value_max"]),
                        "p95": float(np.quantile(values, 0.95)),
                    }
                )
        event_counts: dict[str, int] = {}
        for kind in events.column("kind").to_pylist() if events.num_rows else []:
            event_counts[kind] = event_counts.get(kind, 0) + 1
        modes: dict[str, str] = {}
        for caps in batches.column("capabilities").to_pylist() if batches.num_rows else []:
            modes.update({c["source"]: c["mode"] for c in caps})
        payload = {
            "host": ctx.host,
            "window_start_ns": ctx.window[0],
            "window_end_ns": ctx.window[1],
            "resolution_s": 1.0,
            "batch_count": batches.num_rows,
            "signals": signals,
            "event_counts": event_counts,
            "quality": {
                "sample_count": samples.num_rows,
                "expected_samples": samples.num_rows,
                "staleness_s": max(0.0, (ctx.window[1] - newest) / 1e9),
                "gaps": 0,
                "source_modes": modes,
                "partial": len(signals) >= MAX_SIGNALS,
            },
        }
        return make_artifact(
            kind=ArtifactKind.OBSERVATION_SUMMARY,
            run_id=ctx.run_id,
            incident_id=ctx.incident_id,
            logical_time=ctx.logical_time,
            payload=payload,
            status=ArtifactStatus.OK if samples.num_rows else ArtifactStatus.NO_DATA,
            evidence_refs=[
                EvidenceRef(
                    entity=ctx.host,
                    metric="*",
                    start_ns=ctx.window[0],
                    end_ns=ctx.window[1],
                    batch_ids=batches.column("batch_id").to_pylist()[:100]
                    if batches.num_rows
                    else [],
                )
            ],
        )


class ThresholdAnalyzer(_Base):
    name = "analyzer"

    def run(self, inputs: Sequence[Artifact], evidence: EvidenceView, ctx: StepContext) -> Artifact:
        summary, observed = _find(inputs, ArtifactKind.OBSERVATION_SUMMARY, ObservationSummary)
        rules = ctx.config.get("rules", [])
        samples = evidence.table("samples")
        findings = []
        for rule in rules:
            for signal in observed.signals:
                if signal.metric != rule["metric"] or signal.entity != rule["entity"]:
                    continue
                if signal.maximum <= rule["above"]:
                    continue
                mask = pc.and_(
                    pc.and_(
                        pc.equal(samples.column("metric"), signal.metric),
                        pc.equal(samples.column("entity"), signal.entity),
                    ),
                    pc.greater(samples.column("value"), rule["above"]),
                )
                onset = int(pc.min(samples.filter(mask).column("ts_ns")).as_py())
                findings.append(
                    {
                        "detector": "static_threshold",
                        "metric": signal.metric,
                        "entity": signal.entity,
                        "onset_ns": onset,
                        "severity": rule["severity"],
                        "score": signal.maximum / rule["above"]
                        if rule["above"]
                        else signal.maximum,
                        "value": signal.maximum,
                        "threshold": rule["above"],
                        "direction": "up",
                    }
                )
        worst = max(
            (f["severity"] for f in findings),
            key=["warning", "error", "critical"].index,
            default=None,
        )
        payload = {
            "risk_level": SEVERITY_RISK[worst] if worst else "none",
            "findings": findings,
            "incident": {
                "incident_id": ctx.incident_id,
                "fingerprint": f"{ctx.host}:{ctx.config.get('trigger', '')}",
                "state": "opened" if findings else "none",
            },
            "summary": f"{len(findings)} threshold rule(s) exceeded on {ctx.host}",
        }
        return make_artifact(
            kind=ArtifactKind.ANOMALY_FINDING,
            run_id=ctx.run_id,
            incident_id=ctx.incident_id,
            logical_time=ctx.logical_time,
            payload=payload,
            input_artifact_ids=[summary.artifact_id],
        )


class PolicyGate(_Base):
    name = "policy_gate"

    def run(self, inputs: Sequence[Artifact], evidence: EvidenceView, ctx: StepContext) -> Artifact:
        finding, found = _find(inputs, ArtifactKind.ANOMALY_FINDING, AnomalyFinding)
        require_approval = bool(ctx.config.get("require_approval", True))
        decisions = []
        for i, f in enumerate(found.findings):
            action_id = f"capture_diagnostics-{i}"
            key = canonical_digest(
                {"run": ctx.run_id, "action": action_id, "finding": f.model_dump(mode="json")}
            )
            decisions.append(
                {
                    "action_id": action_id,
                    "idempotency_key": key,
                    "decision": "approval_required" if require_approval else "dry_run",
                    "reasons": ["read-only diagnostics; dry-run posture"],
                    "command": ["sreagent", "collect", "--once", "--host", ctx.host],
                }
            )
        status = (
            ArtifactStatus.APPROVAL_REQUIRED
            if decisions and require_approval
            else ArtifactStatus.OK
        )
        return make_artifact(
            kind=ArtifactKind.EXECUTION_PLAN,
            run_id=ctx.run_id,
            incident_id=ctx.incident_id,
            logical_time=ctx.logical_time,
            status=status,
            payload={
                "posture": {"dry_run": True, "require_approval": require_approval},
                "decisions": decisions,
            },
            input_artifact_ids=[finding.artifact_id],
        )


class DryRunExecutor(_Base):
    name = "executor"

    def needs_approval(self, inputs: Sequence[Artifact], ctx: StepContext) -> bool:
        _, plan = _find(inputs, ArtifactKind.EXECUTION_PLAN, ExecutionPlan)
        return any(d.decision == "approval_required" for d in plan.decisions)

    def run(self, inputs: Sequence[Artifact], evidence: EvidenceView, ctx: StepContext) -> Artifact:
        plan_artifact, plan = _find(inputs, ArtifactKind.EXECUTION_PLAN, ExecutionPlan)
        results: list[dict[str, Any]] = []
        activity_ids: list[str] = []
        for d in plan.decisions:
            if ctx.approval == "rejected":
                results.append(
                    {
                        "action_id": d.action_id,
                        "idempotency_key": d.idempotency_key,
                        "outcome": "skipped",
                        "command": d.command,
                        "output": "rejected by an operator",
                    }
                )
                continue
            request = {"action_id": d.action_id, "command": d.command, "dry_run": True}
            dry_run_output = "dry run: " + " ".join(d.command)

            def effect(output: str = dry_run_output) -> dict[str, Any]:
                # The built-in chain never runs the command; the record says what it would be.
                return {"status": "dry_run", "exit_code": None, "output": output}

            recorded = ctx.activity("execute_action", d.idempotency_key, request, effect)
            outcome = "dry_run" if recorded.get("status") == "dry_run" else "failed"
            results.append(
                {
                    "action_id": d.action_id,
                    "idempotency_key": d.idempotency_key,
                    "outcome": outcome,
                    "command": d.command,
                    "output": str(recorded.get("output") or recorded.get("message")),
                    "activity_id": d.idempotency_key,
                }
            )
            activity_ids.append(d.idempotency_key)
        return make_artifact(
            kind=ArtifactKind.EXECUTION_RESULT,
            run_id=ctx.run_id,
            incident_id=ctx.incident_id,
            logical_time=ctx.logical_time,
            payload={"results": results},
            replayable=not activity_ids,
            recorded_activity_ids=activity_ids,
            input_artifact_ids=[plan_artifact.artifact_id],
        )


class Reporter(_Base):
    name = "memory"

    def run(self, inputs: Sequence[Artifact], evidence: EvidenceView, ctx: StepContext) -> Artifact:
        _, fp = _find(inputs, ArtifactKind.ANOMALY_FINDING, AnomalyFinding)
        _, execution = _find(inputs, ArtifactKind.EXECUTION_RESULT, ExecutionResult)
        timeline = [
            {
                "ts_ns": f.onset_ns,
                "what": f"{f.metric} of {f.entity} above {f.threshold:g} (peak {f.value:g})",
                "artifact_kind": "anomaly_finding",
            }
            for f in sorted(fp.findings, key=lambda f: f.onset_ns)
        ]
        severity = fp.risk_level if fp.risk_level != "none" else "low"
        payload = {
            "title": f"{ctx.config.get('trigger') or 'incident'} on {ctx.host}",
            "severity": severity,
            "summary": fp.summary + "; built-in chain (no root-cause analysis)",
            "fingerprint": fp.incident.fingerprint if fp.incident else ctx.host,
            "timeline": timeline,
            "actions": [r.model_dump(mode="json") for r in execution.results],
            "verification": "nothing_executed",
            "open_questions": ["root cause not analysed by the built-in chain"],
        }
        return make_artifact(
            kind=ArtifactKind.INCIDENT_REPORT,
            run_id=ctx.run_id,
            incident_id=ctx.incident_id,
            logical_time=ctx.logical_time,
            payload=payload,
            input_artifact_ids=[a.artifact_id for a in inputs],
        )


class BuiltinChain:
    """observer -> analyzer -> policy gate -> (approval) -> executor -> memory."""

    name = "builtin/v1"

    def __init__(self) -> None:
        self.steps: tuple[Step, ...] = (
            Observer(),
            ThresholdAnalyzer(),
            PolicyGate(),
            DryRunExecutor(),
            Reporter(),
        )
