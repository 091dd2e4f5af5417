"""The batch contract: round trips, digests, limits and named errors."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from sreagent.errors import (
    BadInput,
    LimitExceeded,
    NonFiniteValue,
    SchemaVersionError,
    UnsupportedEncoding,
)
from sreagent.telemetry import (
    ARROW_CONTENT_TYPE,
    BATCH_SCHEMA,
    JSON_CONTENT_TYPE,
    Batch,
    Event,
    Sample,
    batch_digest,
    batch_to_table,
    decode_batch,
    encode_batch,
)
from sreagent.telemetry import batch as contract
from sreagent.telemetry.arrow import EVENT_TYPE, PROCESS_TYPE, SAMPLE_TYPE
from tests.strategies import model_strategy

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def small_batch(**overrides: object) -> Batch:
    fields: dict[str, object] = {
        "collector_id": "node-1",
        "host": "node-1.example",
        "producer_epoch": "e1",
        "seq": 7,
        "sent_at_ns": 1_767_225_600_000_000_000,
        "samples": [
            Sample(ts_ns=1_767_225_600_000_000_000, metric="cpu_utilisation_ratio", entity="host", value=0.5),
            Sample(ts_ns=1_767_225_600_000_000_000, metric="disk_await_seconds", entity="disk/sda",
                   labels={"kind": "hdd"}, value=0.012),
        ],
        "events": [Event(ts_ns=1_767_225_600_000_000_000, kind="oom_kill", entity="process/42",
                         source="kmsg", severity="error", attributes={"victim_comm": "leaky"})],
    }
    fields.update(overrides)
    return Batch.model_validate(fields)


def arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@PROPERTY
@given(model_strategy(Batch))
def test_any_valid_batch_round_trips_through_arrow_and_json(batch: Batch) -> None:
    from_arrow = decode_batch(encode_batch(batch), ARROW_CONTENT_TYPE)
    from_json = decode_batch(encode_batch(batch, JSON_CONTENT_TYPE), JSON_CONTENT_TYPE)
    assert from_arrow.to_batch() == batch
    assert from_json.to_batch() == batch
    assert batch_digest(from_arrow) == batch_digest(from_json)


def test_digest_changes_with_any_content_change() -> None:
    base = batch_digest(decode_batch(encode_batch(small_batch())))
    changed_value = small_batch(samples=[Sample(ts_ns=1, metric="m", entity="host", value=0.51)])
    assert batch_digest(decode_batch(encode_batch(changed_value))) != base
    assert batch_digest(decode_batch(encode_batch(small_batch(host="other")))) != base
    assert batch_digest(decode_batch(encode_batch(small_batch()))) == base


def test_labels_are_sorted_so_equal_batches_are_equal() -> None:
    one = Sample(ts_ns=1, metric="m", entity="host", labels={"b": "2", "a": "1"}, value=1.0)
    two = Sample(ts_ns=1, metric="m", entity="host", labels={"a": "1", "b": "2"}, value=1.0)
    assert list(one.labels) == ["a", "b"]
    assert encode_batch(small_batch(samples=[one])) == encode_batch(small_batch(samples=[two]))


def test_arrow_schema_mirrors_the_models() -> None:
    assert BATCH_SCHEMA.names == list(Batch.model_fields)
    assert [f.name for f in SAMPLE_TYPE] == list(contract.Sample.model_fields)
    assert [f.name for f in PROCESS_TYPE] == list(contract.ProcessRow.model_fields)
    assert [f.name for f in EVENT_TYPE] == list(contract.Event.model_fields)


def test_nan_in_json_is_named() -> None:
    body = encode_batch(small_batch(), JSON_CONTENT_TYPE).replace(b'"value":0.5', b'"value":NaN')
    with pytest.raises(NonFiniteValue) as caught:
        decode_batch(body, JSON_CONTENT_TYPE)
    assert "NaN" in str(caught.value)


def test_nan_in_arrow_names_the_row_and_field() -> None:
    table = batch_to_table(small_batch()).to_pylist()
    table[0]["samples"][1]["value"] = float("inf")
    body = arrow_body(pa.Table.from_pylist(table, schema=BATCH_SCHEMA))
    with pytest.raises(NonFiniteValue) as caught:
        decode_batch(body)
    assert caught.value.field == "samples[1].value"


def test_unknown_schema_version_is_refused_in_both_encodings() -> None:
    raw = json.loads(encode_batch(small_batch(), JSON_CONTENT_TYPE))
    raw["schema_version"] = "sreagent.batch/v9"
    with pytest.raises(SchemaVersionError) as caught:
        decode_batch(json.dumps(raw).encode(), JSON_CONTENT_TYPE)
    assert caught.value.field == "schema_version"
    table = batch_to_table(small_batch()).to_pylist()
    table[0]["schema_version"] = "sreagent.batch/v9"
    with pytest.raises(SchemaVersionError):
        decode_batch(arrow_body(pa.Table.from_pylist(table, schema=BATCH_SCHEMA)))


def test_oversized_body_is_refused_before_decoding() -> None:
    with pytest.raises(LimitExceeded) as caught:
        decode_batch(b"x" * (contract.MAX_BODY_BYTES + 1))
    assert str(contract.MAX_BODY_BYTES) in str(caught.value)


def test_compression_bomb_is_refused() -> None:
    bomb = gzip.compress(b"\0" * (contract.MAX_DECODED_BYTES + 10))
    with pytest.raises(LimitExceeded):
        decode_batch(bomb, JSON_CONTENT_TYPE, "gzip")


def test_gzip_and_zstd_bodies_decode() -> None:
    body = encode_batch(small_batch(), JSON_CONTENT_TYPE)
    assert decode_batch(gzip.compress(body), JSON_CONTENT_TYPE, "gzip").to_batch() == small_batch()
    zstd = pa.compress(body, codec="zstd", asbytes=True)
    # Arrow's raw codec output is a bare zstd frame, as HTTP's zstd encoding is.
    assert decode_batch(zstd, JSON_CONTENT_TYPE, "zstd").to_batch() == small_batch()


def test_too_many_rows_names_the_table() -> None:
    many = [{"ts_ns": 1, "metric": "m", "entity": "host", "labels": [], "value": 1.0}] * (
        contract.MAX_SAMPLES + 1
    )
    table = batch_to_table(small_batch()).to_pylist()
    table[0]["samples"] = many
    with pytest.raises(LimitExceeded) as caught:
        decode_batch(arrow_body(pa.Table.from_pylist(table, schema=BATCH_SCHEMA)))
    assert caught.value.field == "samples"


@pytest.mark.parametrize(
    ("mutate", "field", "error"),
    [
        (lambda r: r["samples"][0].update(metric="bad metric"), "samples[0].metric", BadInput),
        (lambda r: r["samples"][1].update(entity="e" * 300), "samples[1].entity", LimitExceeded),
        (lambda r: r["samples"][0].update(labels=[("k" * 101, "v")]), "samples[0].labels", LimitExceeded),
        (lambda r: r["samples"][0].update(labels=[("bad-key", "v")]), "samples[0].labels", BadInput),
        (lambda r: r["samples"][0].update(ts_ns=-1), "samples[0].ts_ns", BadInput),
        (lambda r: r["events"][0].update(severity="fatal"), "events[0].severity", BadInput),
        (lambda r: r["events"][0].update(kind="Not-A-Kind"), "events[0].kind", BadInput),
        (lambda r: r.update(collector_id=""), "collector_id", BadInput),
        (lambda r: r.update(seq=0), "seq", BadInput),
    ],
)
def test_bad_arrow_rows_name_the_field(mutate, field, error) -> None:  # type: ignore[no-untyped-def]
    rows = batch_to_table(small_batch()).to_pylist()
    mutate(rows[0])
    with pytest.raises(error) as caught:
        decode_batch(arrow_body(pa.Table.from_pylist(rows, schema=BATCH_SCHEMA)))
    assert caught.value.field == field


def test_unknown_field_is_named() -> None:
    raw = json.loads(encode_batch(small_batch(), JSON_CONTENT_TYPE))
    raw["samples"][0]["colour"] = "blue"
    with pytest.raises(BadInput) as caught:
        decode_batch(json.dumps(raw).encode(), JSON_CONTENT_TYPE)
    assert caught.value.field == "samples.0.colour"
    table = batch_to_table(small_batch()).append_column("colour", pa.array(["blue"]))
    with pytest.raises(BadInput) as caught:
        decode_batch(arrow_body(table))
    assert caught.value.field == "colour"


def test_wrong_content_type_and_encoding_are_named() -> None:
    with pytest.raises(UnsupportedEncoding, match="text/plain"):
        decode_batch(b"{}", "text/plain")
    with pytest.raises(UnsupportedEncoding, match="br"):
        decode_batch(b"{}", JSON_CONTENT_TYPE, "br")


def test_invalid_utf8_and_malformed_bodies() -> None:
    with pytest.raises(BadInput, match="UTF-8"):
        decode_batch(b'{"host": "\xff"}', JSON_CONTENT_TYPE)
    with pytest.raises(BadInput, match="not valid JSON"):
        decode_batch(b'{"host": ', JSON_CONTENT_TYPE)
    with pytest.raises(BadInput, match="Arrow IPC"):
        decode_batch(b"definitely not arrow")
    with pytest.raises(BadInput, match="JSON object"):
        decode_batch(b"[1, 2]", JSON_CONTENT_TYPE)


def test_golden_batch_canonical_json_and_digest(golden) -> None:  # type: ignore[no-untyped-def]
    batch = small_batch()
    golden("batch_v1.json", encode_batch(batch, JSON_CONTENT_TYPE) + b"\n")
    golden("batch_v1.digest", batch_digest(decode_batch(encode_batch(batch))).encode() + b"\n")
