"""Policy gate: one decision per proposed action, with its reasons as data.

Order of the rules (the first that applies decides):

1. ``destructive`` -> blocked, always (no posture or approval changes this).
2. a class in ``posture.blocked_classes`` -> blocked.
3. a state-changing action whose target matches no ``posture.target_allowlist`` pattern ->
   blocked.
4. ``posture.dry_run`` -> dry_run (the exact command is recorded, nothing runs).
5. a state-changing action with ``posture.require_approval`` -> approval_required (the
   executor runs it only once an approval is recorded for its idempotency key).
6. otherwise -> allowed.

The idempotency key is a digest of (action, target, incident): the same action on the same
target for the same incident is one execution, however often it is approved. The gate itself
takes no human input: it is a pure function of the proposal and the posture.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from sreagent.actions.catalogue import DEFAULT_CATALOGUE, Catalogue
from sreagent.artifacts import (
    Artifact,
    ArtifactKind,
    ArtifactStatus,
    ExecutionPlan,
    PlanDecision,
    RemediationProposal,
    make_artifact,
)
from sreagent.canonical import canonical_digest
from sreagent.errors import BadInput
from sreagent.runtime._context import RoleContext


def idempotency_key(action: str, target: str, incident_id: str) -> str:
    return "idem-" + canonical_digest([action, target, incident_id])[:32]


def gate(proposal: Artifact, ctx: RoleContext) -> Artifact:
    """execution_plan: the posture, and for every action its key, decision, reasons, command."""
    assert isinstance(proposal.payload, RemediationProposal)
    posture = ctx.config.posture
    catalogue: Catalogue = ctx.catalogue or DEFAULT_CATALOGUE
    decisions = []
    for a in proposal.payload.actions:
        key = idempotency_key(a.action, a.target, proposal.incident_id)
        reasons: list[str] = [f"safety class {a.safety_class}"]
        try:
            spec = catalogue.get(a.action)
            command = spec.command(dict(a.parameters))
        except BadInput as err:
            decisions.append(PlanDecision(action_id=a.action_id, idempotency_key=key,
                                          decision="blocked",
                                          reasons=[f"no safe command: {err.message}"]))
            continue
        if spec.safety_class != a.safety_class:
            reasons.append(f"catalogue says {spec.safety_class}; the catalogue wins")
        klass = spec.safety_class
        changes_state = klass != "read_only"
        if klass == "destructive":
            decision = "blocked"
            reasons.append("destructive actions are never executed by sreagent")
        elif klass in posture.blocked_classes:
            decision = "blocked"
            reasons.append(f"posture blocks {klass} actions")
        elif changes_state and not any(fnmatchcase(a.target, pattern)
                                       for pattern in posture.target_allowlist):
            decision = "blocked"
            reasons.append(f"target {a.target} matches no allowlist pattern "
                           f"({len(posture.target_allowlist)} configured)")
        elif posture.dry_run:
            decision = "dry_run"
            reasons.append("posture is dry-run: the command is recorded, not run")
        elif changes_state and posture.require_approval:
            decision = "approval_required"
            reasons.append("posture requires an operator's approval before it runs")
        else:
            decision = "allowed"
            reasons.append("read-only" if not changes_state else "posture needs no approval")
        decisions.append(PlanDecision(action_id=a.action_id, idempotency_key=key,
                                      decision=decision, reasons=reasons, command=command))
    kinds = {d.decision for d in decisions}
    status = (ArtifactStatus.APPROVAL_REQUIRED if "approval_required" in kinds
              else ArtifactStatus.BLOCKED if decisions and kinds == {"blocked"}
              else ArtifactStatus.OK if decisions else ArtifactStatus.NO_DATA)
    return make_artifact(
        kind=ArtifactKind.EXECUTION_PLAN, run_id=ctx.run_id, incident_id=proposal.incident_id,
        logical_time=proposal.logical_time, status=status,
        payload=ExecutionPlan(posture=posture, decisions=decisions),
        input_artifact_ids=[proposal.artifact_id],
    )
