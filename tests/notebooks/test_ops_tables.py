"""The operations app's helpers: API answers (the shapes docs/controller.md documents) to tables."""

from __future__ import annotations

import pytest

from sreagent.errors import BadInput, CheckFailed
from sreagent.reports import (
    ControllerClient,
    chain_table,
    execution_outcomes,
    gate_decisions,
    hosts_table,
    latest_reports_table,
)
from tests.controller.helpers import free_port

PROPOSAL = {"kind": "remediation_proposal", "artifact_id": "b" * 64, "producer": "planner", "status": "ok",
            "input_artifact_ids": ["a" * 64],
            "payload": {"actions": [{"action_id": "act-1", "action": "inspect_nic", "target": "nic/eth0",
                                     "safety_class": "read_only"},
                                    {"action_id": "act-2", "action": "vacuum_journal", "target": "fs//var",
                                     "safety_class": "destructive"}]}}
PLAN = {"kind": "execution_plan", "artifact_id": "c" * 64, "producer": "policy_gate", "status": "ok",
        "input_artifact_ids": ["b" * 64],
        "payload": {"decisions": [
            {"action_id": "act-1", "decision": "approval_required", "reasons": ["safety class read_only", "posture requires approval"],
             "command": ["ip", "-s", "link"]},
            {"action_id": "act-2", "decision": "blocked", "reasons": ["safety class destructive"], "command": []}]}}
RESULT = {"kind": "execution_result", "artifact_id": "d" * 64, "producer": "executor", "status": "ok",
          "input_artifact_ids": ["c" * 64],
          "payload": {"results": [{"action_id": "act-1", "outcome": "executed", "exit_code": 0, "output": "x" * 500}]}}


def test_gate_decisions_name_each_action_with_its_reasons() -> None:
    table = gate_decisions([PROPOSAL, PLAN])
    assert table.rows() == [
        ("inspect_nic", "nic/eth0", "read_only", "approval_required",
         "safety class read_only; posture requires approval", "ip -s link"),
        ("vacuum_journal", "fs//var", "destructive", "blocked", "safety class destructive", ""),
    ]
    assert gate_decisions([PROPOSAL]).is_empty()  # the gate has not run yet


def test_execution_outcomes_and_chain_grow_with_the_run() -> None:
    assert execution_outcomes([PROPOSAL, PLAN]).is_empty()
    outcomes = execution_outcomes([PROPOSAL, PLAN, RESULT])
    assert outcomes["outcome"].to_list() == ["executed"] and outcomes["exit_code"][0] == "0"
    assert len(outcomes["output"][0]) == 300  # long outputs are cut for the table
    chain = chain_table([PROPOSAL, PLAN, RESULT])
    assert chain["kind"].to_list() == ["remediation_proposal", "execution_plan", "execution_result"]
    assert chain["inputs"].to_list() == ["a" * 12, "b" * 12, "c" * 12]


def test_host_tables_sort_newest_first_and_read_the_latest_report() -> None:
    hosts = hosts_table({"old": {"last_seen_ns": 1, "batches": 2}, "new": {"last_seen_ns": 10**18, "batches": 5}})
    assert hosts["host"].to_list() == ["new", "old"] and hosts["batches"].to_list() == [5, 2]
    latest = latest_reports_table({"web-1": {"run_id": "r1", "report": {
        "title": "CPU saturated", "severity": "high", "verification": "improved",
        "top_hypotheses": [{"fault_class": "cpu_saturation", "entity": "process/1500"}]}}})
    assert latest.row(0) == ("web-1", "r1", "CPU saturated", "high", "cpu_saturation at process/1500", "improved")


def test_client_refuses_a_bad_url_and_reports_an_unreachable_controller() -> None:
    with pytest.raises(BadInput, match="http"):
        ControllerClient("controller:8080", "t")
    client = ControllerClient(f"http://127.0.0.1:{free_port()}", "t", timeout_s=2)
    with pytest.raises(CheckFailed, match="cannot reach the controller"):
        client.runs()
    client.close()
