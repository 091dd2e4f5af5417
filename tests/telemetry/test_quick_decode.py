"""The quick wire reader (``sreagent.telemetry._ipc``) and the record-batch path of the decoder
give exactly what Arrow's stream reader and ``frame_from_table`` give, or step aside.

The oracle is Arrow's own stream reader: for every body the quick reader accepts, its record
batch must equal Arrow's; for every body it declines (``None``), ``decode_batch`` falls back
to Arrow's reader, so results and error messages are the old ones. Corrupted bodies must
have the same outcome (the same frame, or the same error class and message) with the quick
reader as without it, but for the quick reader's own refusal of buffers declaring more than
the decoded-size cap (which Arrow's reader has not; it refuses those bodies for another
reason).
"""

from __future__ import annotations

import random
import struct
import threading
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import HealthCheck, given, settings

from sreagent.errors import BadInput, LimitExceeded
from sreagent.telemetry import Batch, Sample, _ipc, wire
from sreagent.telemetry import batch as contract
from sreagent.telemetry.arrow import (
    BATCH_SCHEMA,
    batch_to_table,
    frame_from_record_batch,
    frame_from_table,
)
from tests.strategies import model_strategy

T = 1_767_225_600_000_000_000


def _batch(samples: int = 50, seq: int = 1) -> Batch:
    metrics = ["cpu_utilisation_ratio", "memory_used_bytes", "disk_await_seconds"]
    return Batch(
        collector_id="quick-1", host="node-1", producer_epoch="e1", seq=seq, sent_at_ns=T,
        samples=[Sample(ts_ns=T - i, metric=metrics[i % 3], entity=f"cpu/{i % 8}",
                        labels={"gpu": str(i % 2)} if i % 5 == 0 else {},
                        value=float(i % 7) / 3) for i in range(samples)],
    )


def _stream(table: pa.Table, compression: str | None = "zstd",
            batches: list[pa.RecordBatch] | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    options = ipc.IpcWriteOptions(compression=compression)
    with ipc.new_stream(sink, table.schema, options=options) as writer:
        for rows in batches if batches is not None else table.to_batches():
            writer.write_batch(rows)
    return bytes(sink.getvalue().to_pybytes())


def _arrow_only(body: bytes) -> pa.RecordBatch:
    return ipc.open_stream(pa.py_buffer(body)).read_next_batch()


def _outcome(body: bytes) -> tuple[Any, ...]:
    try:
        frame = wire.decode_batch(body)
    except BadInput as err:
        return ("error", type(err).__name__, str(err), err.field)
    return ("ok", frame.header, frame.samples, frame.processes, frame.events)


def _outcome_without_quick(body: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    with monkeypatch.context() as patch:
        patch.setattr(wire, "read_one_batch", lambda data: None)
        return _outcome(body)


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "error":
        return a == b
    return a[1] == b[1] and all(x.equals(y) for x, y in zip(a[2:], b[2:], strict=True))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(model_strategy(Batch))
def test_every_encoded_batch_is_read_quickly_and_equals_arrows_reading(batch: Batch) -> None:
    body = wire.encode_batch(batch)
    rows = _ipc.read_one_batch(body)
    assert rows is not None  # the collector's shape always takes the quick path
    assert rows.equals(_arrow_only(body))
    rows.validate(full=True)
    quick = frame_from_record_batch(rows)
    slow = frame_from_table(ipc.open_stream(pa.py_buffer(body)).read_all())
    assert quick.header == slow.header
    for name in ("samples", "processes", "events"):
        assert getattr(quick, name).equals(getattr(slow, name)), name
    assert wire.batch_digest(quick) == wire.batch_digest(slow)


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_uncompressed_and_zstd_streams_are_read_quickly(compression: str | None) -> None:
    body = _stream(batch_to_table(_batch()), compression)
    rows = _ipc.read_one_batch(body)
    assert rows is not None and rows.equals(_arrow_only(body))


def test_other_shapes_are_left_to_arrow(monkeypatch: pytest.MonkeyPatch) -> None:
    table = batch_to_table(_batch())
    lz4 = _stream(table, "lz4")
    two = _stream(table, batches=[*table.to_batches(), *table.to_batches()])
    with_empty = _stream(table, batches=[*table.to_batches(), table.slice(0, 0).to_batches()[0]]
                         if table.slice(0, 0).to_batches() else table.to_batches())
    no_eos = _stream(table)[:-8]  # a stream may end without its end-of-stream marker
    assert _ipc.read_one_batch(lz4) is None
    assert _ipc.read_one_batch(two) is None
    assert _ipc.read_one_batch(b"") is None
    assert _ipc.read_one_batch(b"not arrow at all") is None
    quick = _ipc.read_one_batch(no_eos)
    assert quick is not None and quick.equals(_arrow_only(no_eos))
    for body in (lz4, two, with_empty, no_eos):
        assert _same(_outcome(body), _outcome_without_quick(body, monkeypatch))
    assert _outcome(lz4)[0] == "ok"
    assert _outcome(two) == ("error", "BadInput",
                             "a batch table has exactly one row, this one has 2", None)


def _frames_of(body: bytes) -> list[tuple[int, int]]:
    """(offset in the body, length) of every non-empty buffer of the record batch."""
    view = memoryview(body)
    meta, root, _, end = _ipc._message(view, 0)
    meta, root, start, _ = _ipc._message(view, end)
    header = _ipc._follow(meta, _ipc._field(meta, root, 2))
    vector = _ipc._follow(meta, _ipc._field(meta, header, 2))
    count = struct.unpack_from("<I", meta, vector)[0]
    spans = struct.unpack_from(f"<{2 * count}q", meta, vector + 4)
    return [(start + spans[2 * i], spans[2 * i + 1]) for i in range(count) if spans[2 * i + 1]]


def test_a_buffer_stored_without_compression_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrow writes a buffer as it is, behind the length -1, when compressing does not pay.
    body = bytearray(wire.encode_batch(_batch()))
    found = False
    for offset, length in _frames_of(bytes(body)):
        size = struct.unpack_from("<q", body, offset)[0]
        if size < 0:
            continue
        raw = pa.Codec("zstd").decompress(bytes(body[offset + 8:offset + length]),
                                          decompressed_size=size, asbytes=True)
        if len(raw) <= length - 8:  # fits in place: rewrite it stored, padded with zeros
            struct.pack_into("<q", body, offset, -1)
            body[offset + 8:offset + length] = raw + bytes(length - 8 - len(raw))
            found = True
            break
    assert found
    data = bytes(body)
    rows = _ipc.read_one_batch(data)
    assert rows is not None and rows.equals(_arrow_only(data))
    assert rows.equals(_arrow_only(wire.encode_batch(_batch())))  # the same values
    assert _same(_outcome(data), _outcome_without_quick(data, monkeypatch))


def test_a_wrong_declared_size_leaves_the_body_to_arrow(monkeypatch: pytest.MonkeyPatch) -> None:
    body = bytearray(wire.encode_batch(_batch()))
    offset, _ = max(_frames_of(bytes(body)), key=lambda span: span[1])
    size = struct.unpack_from("<q", body, offset)[0]
    struct.pack_into("<q", body, offset, size + 1)
    assert _ipc.read_one_batch(bytes(body)) is None
    outcome = _outcome(bytes(body))
    assert outcome[0] == "error" and outcome[2].startswith("body is not an Arrow IPC stream")
    assert outcome == _outcome_without_quick(bytes(body), monkeypatch)


def test_the_decoded_size_cap_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    body = wire.encode_batch(_batch(samples=500))
    declared = sum(max(struct.unpack_from("<q", body, offset)[0], 0)
                   for offset, _ in _frames_of(body))
    monkeypatch.setattr(_ipc, "_small_frames", {})
    monkeypatch.setattr(contract, "MAX_DECODED_BYTES", declared - 1)
    with pytest.raises(LimitExceeded, match=f"expand past {declared - 1} bytes"):
        _ipc.read_one_batch(body)  # refused before anything past the cap is decompressed
    with pytest.raises(LimitExceeded, match="expand past"):
        wire.decode_batch(body)
    monkeypatch.setattr(contract, "MAX_DECODED_BYTES", declared)
    assert _ipc.read_one_batch(body) is not None


def test_corrupted_bodies_have_the_same_outcome_with_or_without_the_quick_reader(
        monkeypatch: pytest.MonkeyPatch) -> None:
    body = wire.encode_batch(_batch(samples=200))
    rng = random.Random(4)
    outcomes = set()
    for _ in range(250):
        corrupted = bytearray(body)
        for _ in range(rng.choice([1, 1, 2, 8])):
            corrupted[rng.randrange(len(body))] = rng.randrange(256)
        if rng.random() < 0.2:
            corrupted = corrupted[:rng.randrange(len(body))]
        data = bytes(corrupted)
        quick = _outcome(data)
        slow = _outcome_without_quick(data, monkeypatch)
        if quick[:2] == ("error", "LimitExceeded") and "expand past" in quick[2]:
            # the one refusal of the quick reader's own: a damaged size prefix claiming more
            # than the cap; Arrow's reader refuses the body too, for what it finds first
            assert slow[0] == "error", slow
            continue
        assert _same(quick, slow), quick
        outcomes.add(quick[0])
    assert outcomes == {"ok", "error"}  # both kinds were exercised


def test_the_schema_cache_is_bounded_and_hits_return_the_same_schema(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ipc, "_schemas", type(_ipc._schemas)())
    table = batch_to_table(_batch(samples=3))
    bodies = [_stream(table.replace_schema_metadata({"n": str(i)}))
              for i in range(_ipc.SCHEMA_CACHE_SIZE + 5)]
    for body in bodies:
        rows = _ipc.read_one_batch(body)
        assert rows is not None and rows.equals(_arrow_only(body))
    assert len(_ipc._schemas) == _ipc.SCHEMA_CACHE_SIZE
    again = _ipc.read_one_batch(bodies[-1])  # a hit
    assert again is not None and again.schema.metadata == {b"n": b"%d" % (len(bodies) - 1)}
    assert again.schema.equals(BATCH_SCHEMA)


def test_threads_decode_with_their_own_contexts() -> None:
    bodies = [wire.encode_batch(_batch(samples=300, seq=s)) for s in range(1, 9)]
    expected = [_arrow_only(body) for body in bodies]
    failures: list[str] = []

    def work() -> None:
        for _ in range(20):
            for body, want in zip(bodies, expected, strict=True):
                rows = _ipc.read_one_batch(body)
                if rows is None or not rows.equals(want):
                    failures.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_sliced_list_column_takes_the_general_flatten() -> None:
    two = pa.concat_tables([batch_to_table(_batch(samples=4, seq=1)),
                            batch_to_table(_batch(samples=6, seq=2))]).combine_chunks()
    second = two.slice(1, 1)  # list offsets [4, 10]: not the whole child array
    frame = frame_from_table(second)
    alone = frame_from_table(batch_to_table(_batch(samples=6, seq=2)))
    assert frame.header == alone.header
    assert frame.samples.equals(alone.samples)


def test_a_writer_with_other_nullability_is_accepted_and_bad_schemas_still_named() -> None:
    table = batch_to_table(_batch(samples=3))
    nullable_seq = table.set_column(table.schema.get_field_index("seq"), "seq",
                                    pa.array([1], pa.int64()))
    assert not nullable_seq.schema.equals(BATCH_SCHEMA)
    for _ in range(2):  # the walk, then the remembered schema
        assert frame_from_table(nullable_seq).header.seq == 1
    wrong = table.set_column(table.schema.get_field_index("seq"), "seq",
                             pa.array(["1"], pa.string()))
    with pytest.raises(BadInput, match="has Arrow type string, expected int64") as err:
        frame_from_table(wrong)
    assert err.value.field == "seq"
    extra = nullable_seq.append_column("surprise", pa.array([1]))
    with pytest.raises(BadInput, match="unknown field") as err:
        frame_from_table(extra)
    assert err.value.field == "surprise"
