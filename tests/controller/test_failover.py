"""Leader failover on a real PostgreSQL server: two `sreagent serve` processes, one database,
one shared journal folder. Kill -9 the leader; the follower takes over within the lease TTL;
a collector that follows 503 + leader hints resumes; no batch is lost or journalled twice."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml

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
    wait_ready,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
TTL = 3.0


class FailoverCollector:
    """What a collector does: follow the leader hint on 503, try the others on errors."""

    def __init__(self, urls: list[str]):
        self.urls = urls
        self.current = urls[0]
        self.redirects = 0

    def send(self, data: bytes, deadline_s: float = 30) -> dict:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            try:
                r = httpx.post(f"{self.current}/api/v1/ingest/batches", content=data,
                               headers={**ARROW, **auth("ingest")}, timeout=5)
            except httpx.HTTPError:
                self.current = self.urls[(self.urls.index(self.current) + 1) % len(self.urls)]
                time.sleep(0.1)
                continue
            if r.status_code == 200:
                return r.json()
            assert r.status_code == 503, r.text
            leader = r.json().get("leader")
            if leader and leader != self.current and leader in self.urls:
                self.current = leader
                self.redirects += 1
            else:
                time.sleep(0.1)
        raise TimeoutError("no controller accepted the batch")


def _config(tmp: Path, name: str, url: str, db: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "data_dir": str(tmp / "shared"), "database_url": db,
        "auth": {"tokens": token_config()},
        "hot_state": {"rebuild_window_s": 0},
        "journal": {"compact_interval_s": 3600},
        "leader": {"enabled": True, "ttl_s": TTL, "node_id": name, "advertise_url": url},
    }))
    return path


def test_follower_takes_over_and_nothing_is_lost_or_doubled(tmp_path: Path, pg_url: str) -> None:
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    leader = start_controller(_config(tmp_path, "a", urls[0], pg_url), port=ports[0],
                              log=tmp_path / "a.log")
    wait_ready(urls[0], proc=leader)
    follower = start_controller(_config(tmp_path, "b", urls[1], pg_url), port=ports[1],
                                log=tmp_path / "b.log")
    try:
        wait_ready(urls[1], proc=follower)
        status = httpx.get(f"{urls[1]}/api/v1/status", headers=auth("read")).json()
        assert status["ha"]["role"] == "follower" and status["ha"]["leader_url"] == urls[0]
        refused = httpx.post(f"{urls[1]}/api/v1/ingest/batches",
                             content=body(make_batch(seq=1)), headers={**ARROW, **auth("ingest")})
        assert refused.status_code == 503 and refused.json()["leader"] == urls[0]
        assert refused.json()["error"]["code"] == "not_leader"
        # the follower still serves reads
        assert httpx.get(f"{urls[1]}/api/v1/runs", headers=auth("read")).status_code == 200

        collector = FailoverCollector([urls[1], urls[0]])  # starts at the follower
        bodies = {s: body(make_batch(seq=s, samples=50)) for s in range(1, 13)}
        acks = {}
        for s in range(1, 7):
            acks[s] = collector.send(bodies[s])
        assert collector.redirects >= 1 and collector.current == urls[0]

        kill9(leader)
        killed_at = time.monotonic()
        acks[7] = collector.send(bodies[7])
        takeover_s = time.monotonic() - killed_at
        assert collector.current == urls[1]
        # within the lease TTL plus one renewal period and process scheduling slack
        assert takeover_s < TTL + TTL / 3 + 3.0, takeover_s
        for s in range(8, 13):
            acks[s] = collector.send(bodies[s])
        assert all(a["status"] == "accepted" for a in acks.values())

        # resending everything (a collector whose acks got lost) changes nothing
        for s, data in bodies.items():
            assert collector.send(data)["status"] == "duplicate", s
        httpx.get(f"{urls[1]}/api/v1/status", headers=auth("read"))
        kill9(follower)  # the last batches are in b's write-ahead log only...
        follower = start_controller(_config(tmp_path, "b", urls[1], pg_url), port=ports[1],
                                    log=tmp_path / "b2.log")
        wait_ready(urls[1], proc=follower)  # ...and recovered into Parquet at start-up
        journal = Counter(Journal(tmp_path / "shared" / "journal").read("batches")
                          .column("batch_id").to_pylist())
        assert set(journal) == {f"c1/e1/{s}" for s in bodies}
        assert max(journal.values()) == 1
        audit = httpx.get(f"{urls[1]}/api/v1/audit?action=leader_transition",
                          headers=auth("admin")).json()["entries"]
        assert {e["actor"] for e in audit} >= {"a", "b"}
    finally:
        kill9(leader)
        kill9(follower)
