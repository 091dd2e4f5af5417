"""The real role chain behind the API: detection -> run -> approval -> a real execution.

The controller ingests a CPU-saturation window whose runaway process is a real ``sleep`` on
this machine. The role chain's planner proposes ``renice_process`` for it; with a posture that
allows ``process/*`` and requires approval, the run waits; an operator's approval makes the
executor run ``renice`` once (the process's nice value really changes) and the verifier's
artifact appears. The run's evidence package records what the chain consumed, so it replays
identically (through the API, the Replayer and ``sreagent replay``), and a what-if with a
changed threshold names the first artifact that differs.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sreagent.api import create_app
from sreagent.evidence import EvidencePackage, verify_package
from sreagent.replay import Replayer
from sreagent.telemetry import encode_batch
from sreagent.testing import WindowBuilder
from tests.controller.helpers import ARROW, auth, make_settings, wait_for

ONSET_S = 600


def _nice_of(pid: int) -> int:
    # /proc/<pid>/stat: the comm field may hold spaces, so split after its closing ')'.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


@pytest.fixture
def victim() -> Iterator[int]:
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=30)


def saturation_window(pid: int, host: str = "node-rc", seconds: int = ONSET_S + 20) -> WindowBuilder:
    """Ten quiet minutes, then CPU saturation driven by ``process/<pid>``."""
    w = WindowBuilder(seconds=seconds, seed=3, host=host)
    w.gauge("cpu_utilisation_ratio", base=0.30, noise=0.03, hi=1.0)
    w.gauge("pressure_some_ratio", base=0.02, noise=0.005, labels={"resource": "cpu"})
    w.gauge("procs_running", base=2.0, noise=0.5)
    w.gauge("memory_used_ratio", base=0.45, noise=0.005)
    w.gauge("process_cpu_ratio", f"process/{pid}", base=0.2, noise=0.02)
    w.ramp("cpu_utilisation_ratio", start_s=ONSET_S, to=0.99, ramp_s=3, noise=0.005)
    w.ramp("pressure_some_ratio", labels={"resource": "cpu"}, start_s=ONSET_S, to=0.55,
           ramp_s=3)
    w.ramp("procs_running", start_s=ONSET_S, to=11.0, ramp_s=3)
    w.ramp("process_cpu_ratio", f"process/{pid}", start_s=ONSET_S, to=3.2, ramp_s=3)
    return w


def ingest_window(client: TestClient, window: WindowBuilder) -> None:
    for frame in window.frames():
        sent = client.post("/api/v1/ingest/batches", content=encode_batch(frame.to_batch()),
                           headers={**ARROW, **auth("ingest")})
        assert sent.status_code == 200, sent.text


def role_chain_settings(tmp_path: Path) -> object:
    return make_settings(tmp_path, workflow={
        "window_s": 600, "dry_run": False, "require_approval": True,
        "chain_config": {"posture": {"target_allowlist": ["process/*"]}}})


def _run_in(client: TestClient, state: str) -> dict:
    def find() -> dict | None:
        runs = client.get("/api/v1/runs", headers=auth("read")).json()["runs"]
        return next((r for r in runs if r["state"] == state), None)
    return wait_for(find, timeout=120, what=f"a run in state {state}")


def test_approved_action_of_the_role_chain_runs_once(tmp_path: Path, victim: int) -> None:
    assert _nice_of(victim) == 0
    with TestClient(create_app(role_chain_settings(tmp_path))) as client:  # type: ignore[arg-type]
        ingest_window(client, saturation_window(victim))
        run = _run_in(client, "awaiting_approval")
        detail = client.get(f"/api/v1/runs/{run['run_id']}", headers=auth("read")).json()
        assert detail["chain"] == ["observer", "analyzer", "hypotheses", "planner",
                                   "policy_gate", "executor", "verifier", "memory"]
        assert detail["approvals"][0]["state"] == "pending"
        waiting = client.get(f"/api/v1/runs/{run['run_id']}/artifacts",
                             headers=auth("read")).json()["artifacts"]
        assert [a["kind"] for a in waiting] == [
            "observation_summary", "anomaly_finding", "root_cause_hypothesis",
            "remediation_proposal", "execution_plan"]
        assert waiting[2]["payload"]["hypotheses"][0]["fault_class"] == "cpu_saturation"
        decisions = {d["command"][0]: d["decision"] for d in waiting[4]["payload"]["decisions"]}
        assert decisions["renice"] == "approval_required" and decisions["kill"] == "blocked"
        assert _nice_of(victim) == 0, "an action ran before its approval"
        unfinished = client.post("/api/v1/replay", json={"run_id": run["run_id"]},
                                 headers=auth("read"))
        assert unfinished.status_code == 409, unfinished.text
        assert unfinished.json()["error"]["field"] == "run_id"
        assert "awaiting_approval" in unfinished.json()["error"]["message"]

        done = client.post(f"/api/v1/runs/{run['run_id']}/approve", json={"reason": "ok"},
                           headers=auth("approve"))
        assert done.status_code == 200, done.text
        _run_in(client, "completed")
        assert _nice_of(victim) == 10

        artifacts = client.get(f"/api/v1/runs/{run['run_id']}/artifacts",
                               headers=auth("read")).json()["artifacts"]
        assert [a["kind"] for a in artifacts][5:] == [
            "execution_result", "verification_result", "incident_report"]
        results = {r["command"][0]: r for r in artifacts[5]["payload"]["results"]}
        assert results["renice"]["outcome"] == "executed"
        assert results["renice"]["output"].startswith("[approved by operator]")
        assert results["kill"]["outcome"] == "blocked"
        assert artifacts[6]["input_artifact_ids"][0] == artifacts[5]["artifact_id"]

        # each effect ran once: one execute_action per idempotency key, one approval record
        events = client.get(f"/api/v1/runs/{run['run_id']}/events",
                            headers=auth("read")).json()["events"]
        kinds = [e["payload"]["kind"] for e in events if e["type"] == "activity_completed"]
        assert kinds.count("approval") == 1
        assert kinds.count("execute_action") == len(
            {r["idempotency_key"] for r in results.values() if r["outcome"] == "executed"})
        report = verify_package(tmp_path / "data" / "runs" / run["run_id"])
        assert report.rows["artifacts.parquet"] == 8

        _assert_replays_identically(client, run["run_id"], tmp_path / "first")

        # A second run of the same incident consumes the first run's approval and executions
        # (same idempotency keys): nothing runs again, and its package carries those records.
        controller = client.app.state.controller  # type: ignore[attr-defined]
        first = controller.store.get_run(run["run_id"])
        second_id = controller.engine.submit(
            incident_id=first["incident_id"], host=first["host"], trigger="test: second run",
            window=(int(first["window_start_ns"]), int(first["window_end_ns"])))
        wait_for(lambda: controller.store.get_run(second_id)["state"] == "awaiting_approval"
                 or None, timeout=120, what="the second run awaiting approval")
        assert client.post(f"/api/v1/runs/{second_id}/approve", json={"reason": "again"},
                           headers=auth("approve")).status_code == 200
        wait_for(lambda: controller.store.get_run(second_id)["state"] == "completed" or None,
                 timeout=120, what="the second run completed")
        assert controller.store.list_activities(second_id) == []  # it claimed nothing itself
        reused = [e for e in controller.store.list_events(second_id)
                  if e["type"] == "activity_reused"]
        assert {e["payload"]["kind"] for e in reused} == {"approval", "execute_action"}
        _assert_replays_identically(client, second_id, tmp_path / "second")


def _assert_replays_identically(client: TestClient, run_id: str, tmp_path: Path) -> None:
    """The exported package replays identically; a changed threshold diverges, named."""
    exported = client.get(f"/api/v1/runs/{run_id}/evidence", headers=auth("read"))
    assert exported.status_code == 200
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        archive.extractall(tmp_path)
    package = tmp_path / run_id
    recorded = EvidencePackage(package)
    run_section = recorded.config["run"]
    assert run_section["format"] == "sreagent.run/v1"
    finding = recorded.artifacts[1]
    assert run_section["incident_id"] == finding.incident_id  # the controller's, not derived
    assert run_section["chain"]["posture"]["target_allowlist"] == ["process/*"]
    assert run_section["runbooks"], "the runbook texts the planner searched are recorded"
    kinds = sorted(r.kind for r in recorded.activities)
    assert kinds.count("approval") == 1 and "execute_action" in kinds

    result = Replayer().replay(package)
    assert result.identical, result.first_divergence and result.first_divergence.describe()
    assert [a.artifact_id for a in result.replayed] == \
        [a.artifact_id for a in recorded.artifacts]

    cli = subprocess.run([sys.executable, "-m", "sreagent", "replay", str(package)], capture_output=True, text=True,
                         timeout=300, check=False)
    assert cli.returncode == 0, cli.stdout + cli.stderr

    same = client.post("/api/v1/replay", json={"run_id": run_id}, headers=auth("read"))
    assert same.status_code == 200, same.text
    assert same.json()["identical"] is True and same.json()["artifacts"] == 8

    # What if the analyzer needed a far larger deviation to open an incident? The finding
    # (artifact 1) is the first to differ, and the replay stops there.
    what_if = client.post("/api/v1/replay", json={
        "run_id": run_id, "overrides": ["detection.z_open=1000"]}, headers=auth("read"))
    assert what_if.status_code == 200, what_if.text
    body = what_if.json()
    assert body["identical"] is False
    first = body["divergences"][0]
    assert (first["position"], first["kind"]) == (1, "anomaly_finding")
    assert body["describe"][0].startswith("artifact 1 (anomaly_finding)")


@pytest.mark.slow
def test_an_approved_action_is_verified_over_the_telemetry_after_it(
        tmp_path: Path, victim: int) -> None:
    """The verifier waits for telemetry after the command ran and compares the expected
    metric on both sides of the moment it started: CPU pressure that was high for the five
    minutes before the renice and low after it is `improved`, with its test and effect size; the
    package records the longer window and replays identically."""
    import time

    now_s = time.time_ns() // 10**9
    before = saturation_window(victim, seconds=900)
    before.start_ns = (now_s - 900) * 10**9
    settings = make_settings(tmp_path, workflow={
        "window_s": 600, "dry_run": False, "require_approval": True, "verify_after_s": 25,
        "chain_config": {"posture": {"target_allowlist": ["process/*"]}}})
    with TestClient(create_app(settings)) as client:  # type: ignore[arg-type]
        ingest_window(client, before)
        run = _run_in(client, "awaiting_approval")
        assert client.post(f"/api/v1/runs/{run['run_id']}/approve", json={"reason": "ok"},
                           headers=auth("approve")).status_code == 200

        def executed() -> dict | None:
            arts = client.get(f"/api/v1/runs/{run['run_id']}/artifacts",
                              headers=auth("read")).json()["artifacts"]
            return arts[5] if len(arts) > 5 else None

        execution = wait_for(executed, timeout=120, what="the execution_result")
        assert _nice_of(victim) == 10
        t_exec = int(execution["logical_time"])
        assert t_exec > int(run["window_end_ns"]), "dated at the command's start, not the plan"
        state = client.get(f"/api/v1/runs/{run['run_id']}", headers=auth("read")).json()
        assert state["state"] == "running"  # waiting for the after-window, not verified blind

        # What the collector sends after the renice: the host's CPU pressure back to normal.
        after = WindowBuilder(seconds=40, seed=9, host="node-rc",
                              start_ns=(t_exec // 10**9 + 1) * 10**9)
        after.gauge("cpu_utilisation_ratio", base=0.35, noise=0.03, hi=1.0)
        after.gauge("pressure_some_ratio", base=0.03, noise=0.01, labels={"resource": "cpu"})
        after.gauge("procs_running", base=2.0, noise=0.5)
        after.gauge("memory_used_ratio", base=0.45, noise=0.005)
        after.gauge("process_cpu_ratio", f"process/{victim}", base=0.2, noise=0.02)
        for frame in after.frames():
            # the same collector, later in its sequence
            frame = frame.__class__(header=frame.header.model_copy(
                update={"seq": frame.header.seq + 10_000}), samples=frame.samples,
                processes=frame.processes, events=frame.events)
            sent = client.post("/api/v1/ingest/batches", content=encode_batch(frame.to_batch()),
                               headers={**ARROW, **auth("ingest")})
            assert sent.status_code == 200, sent.text

        wait_for(lambda: client.get(f"/api/v1/runs/{run['run_id']}", headers=auth("read"))
                 .json()["state"] == "completed" or None, timeout=180,
                 what="the run verified and completed")
        artifacts = client.get(f"/api/v1/runs/{run['run_id']}/artifacts",
                               headers=auth("read")).json()["artifacts"]
        verification = artifacts[6]["payload"]
        verdict = next(v for v in verification["verdicts"]
                       if v["metric"] == "pressure_some_ratio{resource=cpu}")
        assert verdict["before_n"] >= 20 and verdict["after_n"] >= 20, verdict
        assert verdict["before_mean"] > 0.4 > 0.1 > verdict["after_mean"], verdict
        assert verdict["verdict"] == "improved", verdict
        assert verdict["p_value"] < 0.01 and verdict["effect_size"] >= 0.3, verdict
        assert verification["overall"] == "improved"
        events = client.get(f"/api/v1/runs/{run['run_id']}/events",
                            headers=auth("read")).json()["events"]
        assert [e["type"] for e in events].count("waiting_for_evidence") == 1

        package = EvidencePackage(tmp_path / "data" / "runs" / run["run_id"])
        verify_window = package.config["run"]["verify_window"]
        assert verify_window[0] == int(run["window_start_ns"])
        assert verify_window[1] == t_exec + 25 * 10**9
        _assert_replays_identically(client, run["run_id"], tmp_path / "replayed")
