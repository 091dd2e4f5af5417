"""kill -9 the controller (a real `sreagent serve` subprocess) during ingest and during runs.

After a restart: no acknowledged batch is missing from the journal, no batch is journalled
twice, no artifact or execution is duplicated, and an interrupted run completes.
"""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml

from sreagent.controller.store import RunStore
from sreagent.evidence import Journal
from tests.controller.helpers import (
    ARROW,
    auth,
    body,
    free_port,
    kill9,
    make_batch,
    start_controller,
    token_config,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.slow


def _config(tmp: Path, **workflow: object) -> Path:
    path = tmp / "controller.yaml"
    path.write_text(yaml.safe_dump({
        "data_dir": str(tmp / "data"),
        "auth": {"tokens": token_config()},
        "hot_state": {"rebuild_window_s": 0},
        "journal": {"compact_interval_s": 3600},
        "workflow": {"max_concurrent_runs": 1, **workflow},
    }))
    return path


def _send(url: str, batch_body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/ingest/batches", content=batch_body,
                      headers={**ARROW, **auth("ingest")}, timeout=10)


def _journal_ids(tmp: Path) -> Counter[str]:
    return Counter(Journal(tmp / "data" / "journal").read("batches").column("batch_id")
                   .to_pylist())


def test_kill9_during_ingest_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    config = _config(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    bodies = {f"c{c}/e1/{s}": body(make_batch(collector=f"c{c}", host=f"h{c}", seq=s,
                                              samples=100, value=0.1))
              for c in range(4) for s in range(1, 26)}
    acked: set[str] = set()
    proc = start_controller(config, port=port, log=tmp_path / "log1")
    wait_ready(url, proc=proc)

    def collector(c: int) -> None:
        for s in range(1, 26):
            key = f"c{c}/e1/{s}"
            try:
                if _send(url, bodies[key]).status_code == 200:
                    acked.add(key)
            except httpx.HTTPError:
                return

    threads = [threading.Thread(target=collector, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 12, what="12 acknowledged batches")
    kill9(proc)  # mid-stream: requests are in flight
    for t in threads:
        t.join()
    assert 12 <= len(acked) < len(bodies)

    proc = start_controller(config, port=port, log=tmp_path / "log2")
    try:
        wait_ready(url, proc=proc)  # start-up replays the write-ahead log into Parquet
        after_crash = _journal_ids(tmp_path)
        assert acked <= set(after_crash), "an acknowledged batch is missing from the journal"
        assert max(after_crash.values()) == 1
        statuses = Counter()
        for key, data in bodies.items():  # the collectors resend everything unacknowledged
            response = _send(url, data)
            assert response.status_code == 200, response.text
            statuses[response.json()["status"]] += 1
            if key in after_crash:
                assert response.json()["status"] == "duplicate", key
        kill9(proc)  # and once more: the resent batches are in the WAL only
        proc = start_controller(config, port=port, log=tmp_path / "log3")
        wait_ready(url, proc=proc)
        journal = _journal_ids(tmp_path)
        assert set(journal) == set(bodies)
        assert max(journal.values()) == 1, "a batch was journalled twice"
        assert statuses["duplicate"] == len(after_crash)
    finally:
        kill9(proc)


def test_crash_between_journal_flush_and_receipt_is_reconciled(tmp_path: Path) -> None:
    config = _config(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = body(make_batch(seq=1))
    proc = start_controller(config, port=port, env={"SREAGENT_CRASH_AT": "journal:after_flush"})
    wait_ready(url, proc=proc)
    with pytest.raises(httpx.HTTPError):
        _send(url, data)  # the process dies after the flush, before answering
    proc.wait(timeout=30)
    proc = start_controller(config, port=port)
    try:
        wait_ready(url, proc=proc)
        assert _journal_ids(tmp_path) == Counter({"c1/e1/1": 1})
        response = _send(url, data)
        assert response.json()["status"] == "duplicate"
        assert _journal_ids(tmp_path) == Counter({"c1/e1/1": 1})
        assert RunStore(f"sqlite:///{tmp_path / 'data' / 'controller.db'}").receipt_digest(
            "c1/e1/1") == response.json()["digest"]
    finally:
        kill9(proc)


@pytest.mark.parametrize("point", ["step1:before_record", "activity:after_claim",
                                   "step4:before_record"])
def test_kill9_during_a_run_resumes_without_duplicates(tmp_path: Path, point: str) -> None:
    config = _config(tmp_path, require_approval=False, chain="builtin")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_controller(config, port=port, env={"SREAGENT_CRASH_AT": point},
                            log=tmp_path / "log1")
    wait_ready(url, proc=proc)
    assert _send(url, body(make_batch(seq=1, value=0.99))).status_code == 200
    assert proc.wait(timeout=60) == -9, "the fault point did not fire"
    store = RunStore(f"sqlite:///{tmp_path / 'data' / 'controller.db'}")
    [run] = store.list_runs()
    assert run["state"] == "running"
    interrupted_at = run["current_step"]

    proc = start_controller(config, port=port, log=tmp_path / "log2")
    try:
        wait_ready(url, proc=proc)
        wait_for(lambda: store.get_run(run["run_id"])["state"] == "completed", timeout=60,
                 what="the interrupted run to complete")
        artifacts = store.list_artifacts(run["run_id"])
        assert [a.kind.value for a in artifacts] == [
            "observation_summary", "anomaly_finding", "execution_plan", "execution_result",
            "incident_report"]
        assert len({a.artifact_id for a in artifacts}) == 5
        activities = store.list_activities(run["run_id"])
        assert len(activities) == 1, "an execution was duplicated"
        result = artifacts[3].payload.results[0]  # type: ignore[union-attr]
        if point == "activity:after_claim":
            # died mid-effect: recorded as interrupted, never run a second time
            assert activities[0]["status"] == "started"
            assert result.outcome == "failed" and "not run again" in result.output
        else:
            assert activities[0]["status"] == "completed" and result.outcome == "dry_run"
        events = [e["type"] for e in store.list_events(run["run_id"])]
        assert events.count("run_completed") == 1
        resumed = [e for e in store.list_events(run["run_id"]) if e["payload"].get(
            "resumed_at_step") is not None]
        assert resumed and resumed[0]["payload"]["resumed_at_step"] == interrupted_at
        assert (tmp_path / "data" / "runs" / run["run_id"] / "manifest.json").exists()
    finally:
        kill9(proc)
        store.close()


@pytest.mark.parametrize("point", ["activity:after_claim", "step5:before_record"])
def test_kill9_during_a_role_chain_execution_never_runs_an_action_twice(
        tmp_path: Path, point: str) -> None:
    """The role chain (the default) executes for real: `ps` and `renice` on a live process.
    Killed after an action's key was claimed, or after the executor ran but before its
    artifact was stored, the resumed run completes without running any action again."""
    from sreagent.telemetry import encode_batch
    from tests.api.test_role_chain_api import saturation_window

    victim = subprocess.Popen(["sleep", "600"])
    config = _config(tmp_path, require_approval=False, dry_run=False, window_s=600,
                     chain_config={"posture": {"target_allowlist": ["process/*"]}})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_controller(config, port=port, env={"SREAGENT_CRASH_AT": point},
                            log=tmp_path / "log1")
    try:
        wait_ready(url, proc=proc)
        for frame in saturation_window(victim.pid).frames():
            try:
                _send(url, encode_batch(frame.to_batch()))
            except httpx.HTTPError:
                break  # the fault point fired while this batch was in flight
        assert proc.wait(timeout=120) == -9, "the fault point did not fire"
        store = RunStore(f"sqlite:///{tmp_path / 'data' / 'controller.db'}")
        [run] = store.list_runs()
        before = {a["key"]: a["status"] for a in store.list_activities(run["run_id"])}

        proc = start_controller(config, port=port, log=tmp_path / "log2")
        wait_ready(url, proc=proc)
        wait_for(lambda: store.get_run(run["run_id"])["state"] == "completed", timeout=120,
                 what="the interrupted run to complete")
        activities = store.list_activities(run["run_id"])
        keys = [a["key"] for a in activities]
        assert len(keys) == len(set(keys)), "an activity was claimed twice"
        completed = [e for e in store.list_events(run["run_id"])
                     if e["type"] == "activity_completed"]
        assert len(completed) == len({e["payload"]["key"] for e in completed}), \
            "an action ran twice"
        artifacts = store.list_artifacts(run["run_id"])
        assert [a.kind.value for a in artifacts][5:] == [
            "execution_result", "verification_result", "incident_report"]
        results = {r.command[0]: r for r in artifacts[5].payload.results}  # type: ignore[union-attr]
        if point == "activity:after_claim":
            # died with the first action's key claimed: it is reported, never re-run blindly
            [claimed] = before.values()
            assert claimed == "started"
            assert results["ps"].outcome == "failed" and "not run again" in results["ps"].output
        else:
            # died after the executor ran both: their recorded results are fed back
            assert set(before.values()) == {"completed"}
            assert results["ps"].outcome == "executed"
        assert results["renice"].outcome == "executed"
        stat = Path(f"/proc/{victim.pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[16]) == 10
        store.close()
    finally:
        kill9(proc)
        victim.kill()
        victim.wait(timeout=30)
