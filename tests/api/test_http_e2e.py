"""Real HTTP (uvicorn on a loopback port): the collector's own transport against the
controller, with gzip and zstd bodies, duplicates, a conflicting resend, and bad tokens."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sreagent.collector.transport import BatchKey, Transport
from sreagent.evidence import Journal
from tests.controller.helpers import (
    ARROW,
    TOKENS,
    body,
    make_batch,
    make_settings,
    serve_in_thread,
)


@pytest.mark.slow
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_collector_transport_round_trip(tmp_path: Path, compression: str) -> None:
    settings = make_settings(tmp_path)
    with serve_in_thread(settings) as url:
        transport = Transport([url], token=TOKENS["ingest"], compression=compression)  # type: ignore[arg-type]
        try:
            for seq in (1, 2):
                result = transport.send(BatchKey("c1", "e1", seq), body(make_batch(seq=seq)))
                assert result.outcome == "delivered", result
            again = transport.send(BatchKey("c1", "e1", 1), body(make_batch(seq=1)))
            assert again.outcome == "duplicate"
            clash = transport.send(BatchKey("c1", "e1", 2), body(make_batch(seq=2, value=0.7)))
            assert clash.outcome == "rejected" and clash.status_code == 409
            # an ack for a different key is a mismatch the collector catches
            odd = transport.send(BatchKey("c1", "e1", 3), body(make_batch(seq=4)))
            assert odd.outcome == "mismatch"
        finally:
            transport.close()
        bad = Transport([url], token="wrong", compression="none")
        try:
            assert bad.send(BatchKey("c1", "e1", 9), body(make_batch(seq=9))).status_code == 401
        finally:
            bad.close()
        wrong_scope = httpx.post(f"{url}/api/v1/ingest/batches", content=body(make_batch(seq=9)),
                                 headers={**ARROW, "Authorization": f"Bearer {TOKENS['read']}"})
        assert wrong_scope.status_code == 403
        status = httpx.get(f"{url}/api/v1/ingest/status",
                           headers={"Authorization": f"Bearer {TOKENS['read']}"}).json()
        assert status["accepted"] == 3 and status["duplicates"] == 1 and status["conflicts"] == 1
    # the server stopped: its journal flushed everything to Parquet on shutdown
    ids = sorted(Journal(settings.journal_root).read("batches").column("batch_id").to_pylist())
    assert ids == ["c1/e1/1", "c1/e1/2", "c1/e1/4"]
