"""Decision diffs: what a what-if replay changed, in an operator's terms.

Not every byte of every artifact, but the decisions: whether an incident opened, how the
hypotheses ranked, what the policy gate allowed or blocked, and the verification verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sreagent.artifacts import (
    AnomalyFinding,
    Artifact,
    ArtifactKind,
    ExecutionPlan,
    RemediationProposal,
    RootCauseHypothesis,
    VerificationResult,
)
from sreagent.evidence import ActivityRecord

WHAT_IF_STATUS = "what_if"


@dataclass(frozen=True)
class ActionChange:
    action: str
    target: str
    before: str | None
    """The recorded decision (None: the action was not proposed)."""
    after: str | None


@dataclass(frozen=True)
class DecisionDiff:
    incident_before: bool
    incident_after: bool
    ranking_before: tuple[tuple[str, str], ...]
    """(fault class, entity) of each hypothesis, best first."""
    ranking_after: tuple[tuple[str, str], ...]
    actions: tuple[ActionChange, ...]
    """Every action whose decision changed."""
    verification_before: str | None
    verification_after: str | None

    @property
    def changed(self) -> bool:
        return (
            self.incident_before != self.incident_after
            or self.ranking_before != self.ranking_after
            or bool(self.actions)
            or self.verification_before != self.verification_after
        )

    def summary(self) -> list[str]:
        lines = []
        if self.incident_before != self.incident_after:
            lines.append(
                "incident "
                + (
                    "closed (no longer opened)"
                    if self.incident_before
                    else "opened (was not opened)"
                )
            )
        if self.ranking_before != self.ranking_after:
            before = ", ".join(f"{c}@{e}" for c, e in self.ranking_before[:3]) or "none"
            after = ", ".join(f"{c}@{e}" for c, e in self.ranking_after[:3]) or "none"
            lines.append(f"hypotheses re-ranked: {before} -> {after}")
        for change in self.actions:
            lines.append(
                f"action {change.action} on {change.target}: {change.before or 'not proposed'}"
                f" -> {change.after or 'not proposed'}"
            )
        if self.verification_before != self.verification_after:
            lines.append(f"verification: {self.verification_before} -> {self.verification_after}")
        return lines or ["no decision changed"]

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "incident": {"before": self.incident_before, "after": self.incident_after},
            "ranking": {
                "before": [list(x) for x in self.ranking_before],
                "after": [list(x) for x in self.ranking_after],
            },
            "actions": [
                {"action": a.action, "target": a.target, "before": a.before, "after": a.after}
                for a in self.actions
            ],
            "verification": {"before": self.verification_before, "after": self.verification_after},
        }


def _of(chain: Sequence[Artifact], kind: ArtifactKind) -> Artifact | None:
    return next((a for a in chain if a.kind == kind), None)


def _incident(chain: Sequence[Artifact]) -> bool:
    finding = _of(chain, ArtifactKind.ANOMALY_FINDING)
    return (
        finding is not None
        and isinstance(finding.payload, AnomalyFinding)
        and finding.payload.incident is not None
        and finding.payload.incident.state != "none"
    )


def _ranking(chain: Sequence[Artifact]) -> tuple[tuple[str, str], ...]:
    h = _of(chain, ArtifactKind.ROOT_CAUSE_HYPOTHESIS)
    if h is None or not isinstance(h.payload, RootCauseHypothesis):
        return ()
    return tuple((x.fault_class, x.entity) for x in h.payload.hypotheses)


def _decisions(chain: Sequence[Artifact]) -> dict[tuple[str, str], str]:
    proposal = _of(chain, ArtifactKind.REMEDIATION_PROPOSAL)
    plan = _of(chain, ArtifactKind.EXECUTION_PLAN)
    if proposal is None or plan is None:
        return {}
    assert isinstance(proposal.payload, RemediationProposal)
    assert isinstance(plan.payload, ExecutionPlan)
    by_id = {a.action_id: a for a in proposal.payload.actions}
    return {
        (by_id[d.action_id].action, by_id[d.action_id].target): d.decision
        for d in plan.payload.decisions
        if d.action_id in by_id
    }


def _verification(chain: Sequence[Artifact]) -> str | None:
    v = _of(chain, ArtifactKind.VERIFICATION_RESULT)
    return (
        v.payload.overall if v is not None and isinstance(v.payload, VerificationResult) else None
    )


def decision_diff(recorded: Sequence[Artifact], replayed: Sequence[Artifact]) -> DecisionDiff:
    before, after = _decisions(recorded), _decisions(replayed)
    changes = tuple(
        ActionChange(action, target, before.get((action, target)), after.get((action, target)))
        for action, target in sorted(set(before) | set(after))
        if before.get((action, target)) != after.get((action, target))
    )
    return DecisionDiff(
        incident_before=_incident(recorded),
        incident_after=_incident(replayed),
        ranking_before=_ranking(recorded),
        ranking_after=_ranking(replayed),
        actions=changes,
        verification_before=_verification(recorded),
        verification_after=_verification(replayed),
    )


class WhatIfActivities:
    """Recorded results where they exist; anything else is answered without running it.

    A what-if may allow an action the recording never ran. It must not run now, so the
    executor gets status ``what_if`` and reports the action as not carried out.
    """

    def __init__(self, records: Sequence[ActivityRecord]):
        from sreagent.runtime import ReplayActivities

        self._replay = ReplayActivities(records)
        self.records: list[ActivityRecord] = []

    def perform(
        self, kind: str, key: str, request: dict[str, Any], logical_time: int
    ) -> ActivityRecord:
        from sreagent.runtime import ActivityNotRecorded, activity_id

        try:
            record = self._replay.perform(kind, key, request, logical_time)
        except ActivityNotRecorded:
            record = ActivityRecord(
                activity_id=activity_id(kind, key, request),
                kind=kind,
                key=key,
                logical_time=logical_time,
                status=WHAT_IF_STATUS,
                request=request,
                result={"output": "not run: what-if replay", "reason": "what-if replays never act"},
            )
        self.records.append(record)
        return record
