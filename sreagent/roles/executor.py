"""Executor: carries out the policy gate's decisions; runs commands only as activities.

Only ``allowed`` decisions, and ``approval_required`` ones whose ``approval`` activity says
``approved``, reach an actuator, and the executor re-checks the one rule that
must never fail (destructive actions do not run) against the catalogue, so a hand-made or
tampered plan cannot slip one through. Execution is the ``execute_action`` activity, keyed
by the idempotency key: live, the actuator's ledger runs each key at most once; in replay the
recorded result comes back and nothing runs.

The artifact is dated at the plan's time, or at the latest start of a command that ran when
the actuator reports one (``started_ns`` in the recorded result: an approval can come minutes
after the plan), so the verifier splits before from after where the effect really began.
"""

from __future__ import annotations

from sreagent.actions.catalogue import DEFAULT_CATALOGUE, Catalogue
from sreagent.artifacts import (
    ActionResult,
    Artifact,
    ArtifactKind,
    ArtifactStatus,
    ExecutionPlan,
    ExecutionResult,
    RemediationProposal,
    make_artifact,
)
from sreagent.runtime._context import RoleContext

_OUTCOME_OF_DECISION = {"blocked": "blocked", "dry_run": "dry_run",
                        "approval_required": "pending_approval"}


def execute(plan: Artifact, proposal: Artifact, ctx: RoleContext) -> Artifact:
    """execution_result: one result per decision, in the plan's order."""
    assert isinstance(plan.payload, ExecutionPlan)
    assert isinstance(proposal.payload, RemediationProposal)
    catalogue: Catalogue = ctx.catalogue or DEFAULT_CATALOGUE
    by_id = {a.action_id: a for a in proposal.payload.actions}
    results = []
    acted_at = plan.logical_time
    for d in plan.payload.decisions:
        action = by_id.get(d.action_id)
        approved_by = ""
        if d.decision == "approval_required":
            # Approvals are human input: an activity, so a replay sees the same answer.
            record = ctx.activity("approval", d.idempotency_key, {
                "idempotency_key": d.idempotency_key, "action_id": d.action_id,
                "action": action.action if action else "", "target": action.target
                if action else ""})
            state = record.result.get("state") if record.status == "ok" else None
            if state == "approved":
                approved_by = str(record.result.get("by", "an operator"))
            elif state == "rejected":
                results.append(ActionResult(
                    action_id=d.action_id, idempotency_key=d.idempotency_key, outcome="skipped",
                    command=d.command, output=f"rejected by "
                    f"{record.result.get('by', 'an operator')}", activity_id=record.activity_id))
                continue
        if d.decision != "allowed" and not approved_by:
            results.append(ActionResult(action_id=d.action_id, idempotency_key=d.idempotency_key,
                                        outcome=_OUTCOME_OF_DECISION[d.decision],
                                        command=d.command,
                                        output="; ".join(d.reasons)[:16_000]))
            continue
        spec = catalogue.get(action.action) if action is not None else None
        if spec is None or spec.safety_class == "destructive" or not d.command:
            results.append(ActionResult(
                action_id=d.action_id, idempotency_key=d.idempotency_key, outcome="blocked",
                command=d.command, output="refused: destructive, unknown or without a command"))
            continue
        record = ctx.activity("execute_action", d.idempotency_key, {
            "idempotency_key": d.idempotency_key, "argv": list(d.command),
            "timeout_s": ctx.config.action_timeout_s})
        r = record.result
        outcome = {"ok": "executed", "duplicate": "skipped"}.get(record.status, "failed")
        started = r.get("started_ns")
        if outcome == "executed" and isinstance(started, int) and not isinstance(started, bool):
            acted_at = max(acted_at, started)
        output = str(r.get("output", ""))
        if approved_by:
            output = f"[approved by {approved_by}] " + output
        if record.status == "duplicate":
            output = "already executed under this idempotency key; first result: " + output
        results.append(ActionResult(
            action_id=d.action_id, idempotency_key=d.idempotency_key,
            outcome=outcome,
            command=d.command, exit_code=r.get("exit_code"), output=output[-16_000:],
            activity_id=record.activity_id))
    failed = any(r.outcome == "failed" for r in results)
    return make_artifact(
        kind=ArtifactKind.EXECUTION_RESULT, run_id=ctx.run_id, incident_id=plan.incident_id,
        logical_time=acted_at,
        status=ArtifactStatus.FAILED if failed else ArtifactStatus.OK,
        payload=ExecutionResult(results=results),
        input_artifact_ids=[plan.artifact_id, proposal.artifact_id],
        recorded_activity_ids=ctx.take_activity_ids(),
    )
