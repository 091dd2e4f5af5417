"""Ingest route behaviour through the ASGI test client (unit level); bad input named."""

from __future__ import annotations

import gzip
import json

import pytest
from fastapi.testclient import TestClient

from sreagent.evidence import Journal
from sreagent.telemetry import batch as contract
from tests.controller.helpers import ARROW, auth, body, make_batch

URL = "/api/v1/ingest/batches"


def journal(client: TestClient) -> Journal:
    """The journal with every acknowledged batch written as Parquet (not only in the WAL)."""
    client.app.state.controller.ingest.group_commit.flush_parquet()
    return Journal(client.app.state.settings.journal_root)


def post(client: TestClient, data: bytes, headers: dict[str, str] | None = None,
         scope: str = "ingest"):
    return client.post(URL, content=data, headers={**ARROW, **auth(scope), **(headers or {})})


def test_accept_then_duplicate_then_journal_and_hot_state(client: TestClient) -> None:
    batch = make_batch(seq=1, samples=25, events=2)
    first = post(client, body(batch))
    assert first.status_code == 200, first.text
    ack = first.json()
    assert ack["status"] == "accepted"
    assert (ack["collector_id"], ack["producer_epoch"], ack["seq"]) == ("c1", "e1", 1)
    assert ack["batch_id"] == "c1/e1/1" and ack["samples"] == 25 and ack["events"] == 2
    # the same batch as JSON is the same content: duplicate, not a conflict
    again = client.post(URL, content=body(batch, "application/json"),
                        headers={"Content-Type": "application/json", **auth("ingest")})
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert journal(client).read("batches").column("batch_id").to_pylist() == ["c1/e1/1"]
    assert journal(client).read("samples").num_rows == 25
    status = client.get("/api/v1/ingest/status", headers=auth("read")).json()
    assert status["accepted"] == 1 and status["duplicates"] == 1
    assert status["hot_state"]["samples"] == 25 and status["hosts"]["node-1"]["batches"] == 1


def test_same_key_different_payload_is_409_and_audited(client: TestClient) -> None:
    assert post(client, body(make_batch(seq=3, value=0.1))).status_code == 200
    clash = post(client, body(make_batch(seq=3, value=0.2)))
    assert clash.status_code == 409
    error = clash.json()["error"]
    assert error["code"] == "batch_conflict" and error["field"] == "seq"
    audit = client.get("/api/v1/audit", headers=auth("admin")).json()["entries"]
    assert audit[0]["action"] == "ingest_conflict" and audit[0]["target"] == "c1/e1/3"
    assert audit[0]["actor"] == "ingest-user"
    assert journal(client).read("samples").num_rows == 10


def test_a_key_the_recent_map_forgot_is_answered_from_the_receipts(client: TestClient) -> None:
    recent = client.app.state.controller.ingest._recent
    recent.capacity = 1  # the bounded fast path keeps only the last batch
    first = make_batch(seq=5, value=0.1)
    assert post(client, body(first)).json()["status"] == "accepted"
    assert post(client, body(make_batch(seq=6))).json()["status"] == "accepted"
    assert list(recent._data) == ["c1/e1/6"]
    assert post(client, body(first)).json()["status"] == "duplicate"
    clash = post(client, body(make_batch(seq=5, value=0.2)))
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "batch_conflict"
    assert journal(client).read("batches").column("batch_id").to_pylist() == ["c1/e1/5",
                                                                              "c1/e1/6"]


@pytest.mark.parametrize(
    ("make_body", "headers", "status", "code", "field"),
    [
        (lambda: b"\x00\x01 not arrow", {}, 400, "bad_input", None),
        (lambda: b"{not json", {"Content-Type": "application/json"}, 400, "bad_input", None),
        (lambda: body(make_batch()), {"Content-Type": "text/plain"}, 415, "unsupported_encoding",
         None),
        (lambda: body(make_batch()), {"Content-Encoding": "br"}, 415, "unsupported_encoding",
         None),
        (lambda: json.dumps({**make_batch().model_dump(mode="json"),
                             "schema_version": "sreagent.batch/v9"}).encode(),
         {"Content-Type": "application/json"}, 422, "unknown_schema_version", "schema_version"),
        (lambda: json.dumps(make_batch().model_dump(mode="json")).replace(
            '"value": 0.5', '"value": NaN', 1).encode(),
         {"Content-Type": "application/json"}, 422, "non_finite_value", None),
        (lambda: b"\xff\xfe{}", {"Content-Type": "application/json"}, 400, "bad_input", None),
        (lambda: json.dumps({**make_batch().model_dump(mode="json"), "surprise": 1}).encode(),
         {"Content-Type": "application/json"}, 422, "bad_input", "surprise"),
        (lambda: b"x" * (contract.MAX_BODY_BYTES + 1), {}, 413, "limit_exceeded", None),
        (lambda: gzip.compress(b"not-json"), {"Content-Type": "application/json",
                                              "Content-Encoding": "gzip"}, 400, "bad_input",
         None),
    ],
    ids=["malformed-arrow", "malformed-json", "wrong-content-type", "unknown-encoding",
         "unknown-schema-version", "nan", "invalid-utf8", "unknown-field", "oversized-body",
         "gzip-not-json"],
)
def test_bad_input_is_named(client: TestClient, make_body, headers, status, code, field) -> None:  # type: ignore[no-untyped-def]
    response = post(client, make_body(), headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field
    rejected = client.get("/api/v1/ingest/status", headers=auth("read")).json()["rejected"]
    assert rejected == {code: 1}
    assert journal(client).read("batches").num_rows == 0


def test_too_many_rows_names_the_table(client: TestClient) -> None:
    import pyarrow as pa

    from sreagent.telemetry.arrow import BATCH_SCHEMA, batch_to_table

    table = batch_to_table(make_batch(samples=1))
    row = table.to_pylist()[0]
    row["samples"] = row["samples"] * (contract.MAX_SAMPLES + 1)
    big = pa.Table.from_pylist([row], schema=BATCH_SCHEMA)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, BATCH_SCHEMA,
                           options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_table(big)
    response = post(client, sink.getvalue().to_pybytes())
    assert response.status_code == 413
    assert response.json()["error"]["field"] == "samples"


def test_missing_token_is_401_and_wrong_scope_is_403(client: TestClient) -> None:
    data = body(make_batch())
    missing = client.post(URL, content=data, headers=ARROW)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthenticated"
    unknown = client.post(URL, content=data, headers={**ARROW, "Authorization": "Bearer nope"})
    assert unknown.status_code == 401
    wrong = post(client, data, scope="read")
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
    admin = post(client, data, scope="admin")  # admin implies every scope
    assert admin.status_code == 200
    assert client.get("/api/v1/runs", headers=auth("ingest")).status_code == 403
    assert client.get("/healthz").status_code == 200  # health needs no token
    assert client.get("/readyz").status_code == 200


def test_schema_endpoint_describes_limits(client: TestClient) -> None:
    schema = client.get("/api/v1/ingest/schema", headers=auth("read")).json()
    assert schema["schema_version"] == "sreagent.batch/v1"
    assert schema["limits"]["max_samples"] == contract.MAX_SAMPLES
    assert schema["dedupe_key"] == ["collector_id", "producer_epoch", "seq"]
    assert "samples" in schema["json_schema"]["properties"]


def test_metrics_expose_ingest_and_hot_state(client: TestClient) -> None:
    post(client, body(make_batch(seq=1)))
    post(client, b"junk")
    text = client.get("/metrics", headers=auth("read")).text
    assert 'sreagent_ingest_batches_total{outcome="accepted"} 1.0' in text
    assert 'sreagent_ingest_rejected_total{reason="bad_input"} 1.0' in text
    assert "sreagent_hot_state_samples 10.0" in text
    assert "sreagent_ingest_ack_seconds_count 1.0" in text
