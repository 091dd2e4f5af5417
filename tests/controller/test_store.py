"""The run store on SQLite and on a real PostgreSQL server (every test runs on both)."""

from __future__ import annotations

import threading

import pytest

from sreagent.artifacts import ArtifactKind, make_artifact
from sreagent.controller.errors import InvalidState, NotFound
from sreagent.controller.store import RunStore


@pytest.fixture
def store(store_url: str) -> RunStore:
    s = RunStore(store_url)
    s.migrate()
    yield s
    s.close()


def _summary(run_id: str, t: int):
    return make_artifact(
        kind=ArtifactKind.OBSERVATION_SUMMARY, run_id=run_id, incident_id="inc-1",
        logical_time=t,
        payload={"host": "h1", "window_start_ns": 0, "window_end_ns": t, "resolution_s": 1.0,
                 "batch_count": 1, "quality": {"sample_count": 1, "expected_samples": 1,
                                               "staleness_s": 0.0, "gaps": 0}},
    )


def test_migrate_twice_is_a_no_op(store: RunStore) -> None:
    store.migrate()
    assert store.run_state_counts()["pending"] == 0


def test_receipts_dedupe_and_keep_the_first_digest(store: RunStore) -> None:
    row = {"batch_id": "c/e/1", "collector_id": "c", "producer_epoch": "e", "seq": 1,
           "host": "h", "digest": "a" * 64, "samples": 5, "accepted_at_ns": 1}
    store.insert_receipts([row])
    store.insert_receipts([{**row, "digest": "b" * 64}])
    assert store.receipt_digest("c/e/1") == "a" * 64
    assert store.receipt_digest("c/e/2") is None
    assert store.known_batch_ids(["c/e/1", "c/e/2"]) == {"c/e/1"}
    assert store.receipt_stats() == {"receipts": 1, "samples": 5}


def test_run_lifecycle_events_and_artifacts(store: RunStore) -> None:
    store.create_run(run_id="r1", incident_id="inc-1", host="h1", trigger="t", chain="builtin",
                     window=(0, 10))
    assert store.set_run_state("r1", "running", expect=["pending"])
    assert not store.set_run_state("r1", "running", expect=["pending"])  # not pending any more
    art = _summary("r1", 10)
    assert store.record_step("r1", 0, art, host="h1")
    # a resumed run recomputing step 0 does not duplicate it
    assert not store.record_step("r1", 0, art, host="h1")
    assert [a.artifact_id for a in store.list_artifacts("r1")] == [art.artifact_id]
    assert store.get_run("r1")["current_step"] == 1
    types = [e["type"] for e in store.list_events("r1")]
    assert types == ["run_created", "run_running", "step_completed"]
    assert store.latest_artifacts_by_host("observation_summary")["h1"] == art
    with pytest.raises(NotFound):
        store.get_run("nope")


def test_idempotency_key_is_claimed_once(store: RunStore) -> None:
    assert store.begin_activity("k1", run_id="r", kind="execute_action", request={"a": 1}) is None
    again = store.begin_activity("k1", run_id="r", kind="execute_action", request={"a": 1})
    assert again is not None and again["status"] == "started"
    store.complete_activity("k1", {"exit_code": 0})
    done = store.begin_activity("k1", run_id="r", kind="execute_action", request={"a": 1})
    assert done is not None and done["status"] == "completed" and done["result"] == {"exit_code": 0}


def test_concurrent_claims_of_one_key_let_exactly_one_win(store: RunStore) -> None:
    winners: list[int] = []

    def claim(i: int) -> None:
        if store.begin_activity("same", run_id="r", kind="x", request={}) is None:
            winners.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_approval_only_from_awaiting_approval(store: RunStore) -> None:
    store.create_run(run_id="r2", incident_id="i", host="h", trigger="t", chain="builtin",
                     window=(0, 1))
    with pytest.raises(InvalidState):
        store.resolve_approval("r2", approve=True, actor="alice", reason="")
    store.request_approval("r2", 0)
    store.set_run_state("r2", "awaiting_approval")
    assert store.resolve_approval("r2", approve=False, actor="alice", reason="too risky") == 0
    assert store.get_approval("r2", 0)["state"] == "rejected"
    assert store.get_run("r2")["state"] == "pending"
    assert store.list_audit(action="run_rejected")[0]["actor"] == "alice"
    with pytest.raises(InvalidState):
        store.resolve_approval("r2", approve=True, actor="bob", reason="")


def test_incident_open_enrich_close(store: RunStore) -> None:
    _first, opened = store.open_incident(incident_id="i1", fingerprint="fp", host="h",
                                        source="detector", title="t", severity="warning")
    assert opened
    again, opened = store.open_incident(incident_id="i2", fingerprint="fp", host="h",
                                        source="alertmanager", title="t", severity="warning",
                                        labels={"a": "b"})
    assert not opened and again["incident_id"] == "i1" and again["alert_count"] == 2
    assert store.open_fingerprints() == {"fp"}
    assert store.close_incident("fp")["state"] == "closed"
    assert store.close_incident("fp") is None
    assert store.get_incident("i1")["labels"] == {"a": "b"}


def test_lease_is_exclusive_until_it_expires(store: RunStore) -> None:
    a = store.try_lease("leader", holder="a", url="http://a", ttl_ns=60 * 10**9)
    b = store.try_lease("leader", holder="b", url="http://b", ttl_ns=60 * 10**9)
    assert a["is_holder"] and not b["is_holder"] and b["holder_url"] == "http://a"
    store.release_lease("leader", holder="a")
    b = store.try_lease("leader", holder="b", url="http://b", ttl_ns=60 * 10**9)
    assert b["is_holder"] and b["epoch"] == a["epoch"] + 1
