"""Policy gate and executor: default posture runs nothing, approvals run once, destructive never."""

from __future__ import annotations

import threading
from pathlib import Path

from sreagent.actions import ActionSpec, ApprovalBook, ExecutionLedger, execute_action_handler
from sreagent.actions.catalogue import DEFAULT_CATALOGUE
from sreagent.artifacts import (
    ExecutionPlan,
    ExecutionResult,
    Posture,
    ProposedAction,
    RemediationProposal,
    make_artifact,
)
from sreagent.chain import Chain, live_activities
from sreagent.roles import execute, gate
from sreagent.runtime import ChainConfig, LiveActivities
from sreagent.testing import START_NS, RoleEnvironment

from . import windows


def _append_action(path: Path) -> ActionSpec:
    """A real, observable, reversible effect: append one line to a file per execution."""
    return ActionSpec(
        name="append_marker", safety_class="safe_reversible", target_kind="host",
        argv=("sh", "-c", f"echo ran >> {path}"), rollback=f"truncate -s 0 {path}",
        expected_metric="cpu_utilisation_ratio", expected_direction="down",
        fault_classes=("cpu_saturation",), description="test action")


def _proposal(*actions: tuple[str, str, str]) -> object:
    return make_artifact(
        kind="remediation_proposal", run_id="test-run", incident_id="inc-test",
        logical_time=START_NS, payload=RemediationProposal(actions=[
            ProposedAction(action_id=f"act-{i}", action=name, target=target,
                           safety_class=klass,  # type: ignore[arg-type]
                           parameters={"pid": "4242"}, rollback="x",
                           expected_metric="cpu_utilisation_ratio", expected_entity="host",
                           expected_direction="down", hypothesis_rank=1)
            for i, (name, target, klass) in enumerate(actions)]))


def _open_posture(**kw: object) -> ChainConfig:
    return ChainConfig(posture=Posture(dry_run=False, require_approval=True,
                                       blocked_classes=[], target_allowlist=["*"], **kw))


def test_default_posture_executes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    catalogue = DEFAULT_CATALOGUE.with_actions(_append_action(marker))
    approvals = ApprovalBook()
    acts = live_activities(approvals=approvals)
    env = RoleEnvironment(catalogue=catalogue, activities=acts)
    proposal = _proposal(("append_marker", "host", "safe_reversible"),
                         ("renice_process", "process/4242", "safe_reversible"),
                         ("inspect_process", "process/4242", "read_only"))
    plan = env.run(gate, proposal)
    for d in plan.payload.decisions:
        approvals.approve(d.idempotency_key)  # even approved, the default posture runs nothing
    result = env.run(execute, plan, proposal)
    assert isinstance(result.payload, ExecutionResult)
    assert {r.outcome for r in result.payload.results} <= {"dry_run", "blocked"}
    assert not marker.exists()
    assert [r.kind for r in acts.records] == []
    # ... and the dry run recorded the exact command it would have run.
    dry = [r for r in result.payload.results if r.outcome == "dry_run"]
    assert dry and dry[0].command == ["ps", "-o", "pid,ppid,stat,ni,pcpu,rss,nlwp,etime,cmd",
                                      "-p", "4242"]


def test_the_whole_chain_in_default_posture_executes_nothing() -> None:
    acts = live_activities()
    result = Chain().run(windows.cpu_saturation().view(), activities=acts)
    ex = result.of_kind("execution_result")
    assert ex is not None and isinstance(ex.payload, ExecutionResult)
    assert ex.payload.results
    assert all(r.outcome in ("dry_run", "blocked") for r in ex.payload.results)
    assert not [r for r in acts.records if r.kind == "execute_action"]


def test_approval_required_until_approved_then_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    catalogue = DEFAULT_CATALOGUE.with_actions(_append_action(marker))
    approvals = ApprovalBook()
    env = RoleEnvironment(config=_open_posture(), catalogue=catalogue,
                          activities=live_activities(approvals=approvals))
    proposal = _proposal(("append_marker", "host", "safe_reversible"))
    plan = env.run(gate, proposal)
    assert isinstance(plan.payload, ExecutionPlan)
    d = plan.payload.decisions[0]
    assert d.decision == "approval_required"
    first = env.run(execute, plan, proposal)
    assert first.payload.results[0].outcome == "pending_approval"
    assert not marker.exists()
    approvals.approve(d.idempotency_key, by="alice")
    second = env.run(execute, plan, proposal)
    r = second.payload.results[0]
    assert r.outcome == "executed" and r.exit_code == 0 and "alice" in r.output
    assert marker.read_text() == "ran\n"
    assert r.activity_id in second.recorded_activity_ids


def test_rejected_action_is_skipped(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    approvals = ApprovalBook()
    env = RoleEnvironment(config=_open_posture(),
                          catalogue=DEFAULT_CATALOGUE.with_actions(_append_action(marker)),
                          activities=live_activities(approvals=approvals))
    proposal = _proposal(("append_marker", "host", "safe_reversible"))
    plan = env.run(gate, proposal)
    approvals.reject(plan.payload.decisions[0].idempotency_key, by="bob")
    r = env.run(execute, plan, proposal).payload.results[0]
    assert r.outcome == "skipped" and "bob" in r.output and not marker.exists()


def _concurrent_approvals(tmp_path: Path, ledger: ExecutionLedger) -> tuple[list[str], str]:
    marker = tmp_path / "marker"
    catalogue = DEFAULT_CATALOGUE.with_actions(_append_action(marker))
    approvals = ApprovalBook()
    proposal = _proposal(("append_marker", "host", "safe_reversible"))
    plan_env = RoleEnvironment(config=_open_posture(), catalogue=catalogue)
    plan = plan_env.run(gate, proposal)
    key = plan.payload.decisions[0].idempotency_key
    approvals.approve(key, by="alice")
    approvals.approve(key, by="bob")  # approved twice
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        acts = LiveActivities({"execute_action": execute_action_handler(ledger),
                               "approval": approvals})
        env = RoleEnvironment(config=_open_posture(), catalogue=catalogue, activities=acts)
        barrier.wait()
        result = env.run(execute, plan, proposal)
        outcomes.append(result.payload.results[0].outcome)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert marker.read_text() == "ran\n", "the action ran more than once"
    return sorted(outcomes), key


def test_concurrent_approvals_execute_once_in_memory_ledger(tmp_path: Path) -> None:
    outcomes, _ = _concurrent_approvals(tmp_path, ExecutionLedger())
    assert outcomes == ["executed", "skipped", "skipped", "skipped"]


def test_concurrent_approvals_execute_once_sqlite_ledger(tmp_path: Path) -> None:
    ledger = ExecutionLedger(tmp_path / "ledger.sqlite")
    outcomes, key = _concurrent_approvals(tmp_path, ledger)
    assert outcomes == ["executed", "skipped", "skipped", "skipped"]
    # A second ledger on the same file (as another process would open) refuses it too, and
    # hands back the first result.
    again = ExecutionLedger(tmp_path / "ledger.sqlite")
    result = again.execute_once(key, ["sh", "-c", f"echo again >> {tmp_path / 'marker'}"], 5)
    assert result["duplicate"] is True and result["exit_code"] == 0
    assert (tmp_path / "marker").read_text() == "ran\n"


def test_destructive_never_executes(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    spec = _append_action(marker)
    destructive = ActionSpec(**{**spec.__dict__, "name": "append_destructive",
                                "safety_class": "destructive"})
    catalogue = DEFAULT_CATALOGUE.with_actions(destructive)
    approvals = ApprovalBook()
    env = RoleEnvironment(config=ChainConfig(posture=Posture(
        dry_run=False, require_approval=False, blocked_classes=[], target_allowlist=["*"])),
        catalogue=catalogue, activities=live_activities(approvals=approvals))
    proposal = _proposal(("append_destructive", "host", "destructive"))
    plan = env.run(gate, proposal)
    d = plan.payload.decisions[0]
    assert d.decision == "blocked" and any("never" in r for r in d.reasons)
    approvals.approve(d.idempotency_key)
    # Even a hand-made plan that says "allowed" is refused by the executor.
    forged = make_artifact(kind="execution_plan", run_id="test-run", incident_id="inc-test",
                           logical_time=START_NS, payload=ExecutionPlan(
                               posture=plan.payload.posture,
                               decisions=[d.model_copy(update={"decision": "allowed"})]))
    for p in (plan, forged):
        r = env.run(execute, p, proposal).payload.results[0]
        assert r.outcome == "blocked"
    assert not marker.exists()


def test_allowlist_blocks_unlisted_targets() -> None:
    cfg = ChainConfig(posture=Posture(dry_run=False, require_approval=False, blocked_classes=[],
                                      target_allowlist=["process/9*"]))
    env = RoleEnvironment(config=cfg)
    proposal = _proposal(("renice_process", "process/4242", "safe_reversible"))
    d = env.run(gate, proposal).payload.decisions[0]
    assert d.decision == "blocked" and "allowlist" in d.reasons[-1]


def test_catalogue_refuses_hostile_parameters() -> None:
    spec = DEFAULT_CATALOGUE.get("renice_process")
    import pytest

    from sreagent.errors import BadInput

    with pytest.raises(BadInput, match="not a valid pid"):
        spec.command({"pid": "1; rm -rf /"})
    assert spec.command({"pid": "4242"}) == ["renice", "-n", "10", "-p", "4242"]


def test_idempotency_key_is_action_target_incident() -> None:
    from sreagent.roles import idempotency_key

    k = idempotency_key("renice_process", "process/1", "inc-a")
    assert k == idempotency_key("renice_process", "process/1", "inc-a")
    assert k != idempotency_key("renice_process", "process/1", "inc-b")
    assert k != idempotency_key("renice_process", "process/2", "inc-a")
    assert k != idempotency_key("kill_process", "process/1", "inc-a")
