"""The caches behind decode and digest: exact keys, bounds, and hits that equal misses.

* the string-column cache (``_column_cache``): a hit only for the same strings, bounded by
  entries and bytes, and the digest's remembered JSON byte-identical to the oracle's;
* the quick reader's small-frame memo (``_ipc``): bounded, and a hit decodes what a miss
  does;
* the byte classes that stand in for the name patterns in the quick validation pass: never
  accept what the regex refuses, and accept every ASCII string the regex accepts.
"""

from __future__ import annotations

import re
import struct

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sreagent.errors import BadInput
from sreagent.telemetry import Batch, Sample, _column_cache, _digest, _ipc, wire
from sreagent.telemetry import batch as contract
from sreagent.telemetry.arrow import (
    EVENTS_SCHEMA,
    PROCESSES_SCHEMA,
    SAMPLES_SCHEMA,
    BatchFrame,
    _strings_clearly_valid,
    batch_to_table,
    frame_from_table,
)
from sreagent.telemetry.wire import batch_digest
from tests.telemetry.test_digest_columnar import HEADER, _big_samples, columnar_json, oracle_json
from tests.telemetry.test_quick_decode import _arrow_only, _batch, _frames_of


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> _column_cache.ColumnCache:
    fresh = _column_cache.ColumnCache()
    monkeypatch.setattr(_column_cache, "STRING_COLUMNS", fresh)
    monkeypatch.setattr(_digest, "STRING_COLUMNS", fresh)
    return fresh


def _frame(samples: pa.Table) -> BatchFrame:
    return BatchFrame(header=HEADER, samples=samples, processes=PROCESSES_SCHEMA.empty_table(),
                      events=EVENTS_SCHEMA.empty_table())


def test_keys_are_the_exact_content() -> None:
    a = pa.array(["cpu", "mem", "cpu"])
    assert _column_cache.column_key(a) == _column_cache.column_key(pa.array(["cpu", "mem",
                                                                             "cpu"]))
    # the same bytes split differently, one byte changed, a slice of a longer column
    assert _column_cache.column_key(a) != _column_cache.column_key(pa.array(["cp", "umem",
                                                                             "cpu"]))
    assert _column_cache.column_key(a) != _column_cache.column_key(pa.array(["cpu", "mem",
                                                                             "cpv"]))
    longer = pa.array(["x", "cpu", "mem", "cpu", "y"]).slice(1, 3)
    assert _column_cache.column_key(longer)[2] == b"cpumemcpu"  # type: ignore[index]
    assert _column_cache.column_key(pa.array(["a", None])) is None  # nulls: not cached


@pytest.mark.parametrize("rows", [7, 500, 3000])
def test_digest_hits_write_the_oracles_bytes(rows: int, cache: _column_cache.ColumnCache,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _frame(_big_samples(rows, seed=rows))
    expected = oracle_json(frame)
    assert columnar_json(frame) == expected  # misses: computed, remembered
    misses = cache.misses
    assert len(cache) == 2  # metric and entity
    assert columnar_json(frame) == expected  # hits
    assert cache.hits == 2 and cache.misses == misses
    # a hit must also give the Arrow path's bytes (the column path for every column)
    monkeypatch.setattr(_digest, "COLUMNAR_FROM_ROWS", 1)
    cache.clear()
    assert columnar_json(frame) == expected
    assert columnar_json(frame) == expected
    assert batch_digest(frame) == batch_digest(_frame(_big_samples(rows, seed=rows)))


def test_a_remembered_column_does_not_answer_for_one_of_the_same_shape(
        cache: _column_cache.ColumnCache) -> None:
    samples = _big_samples(40, seed=1)
    frame = _frame(samples)
    assert columnar_json(frame) == oracle_json(frame)
    metrics = samples.column("metric").to_pylist()
    metrics[17] = metrics[17][:-1] + ("x" if metrics[17][-1] != "x" else "y")  # same lengths
    changed = _frame(samples.set_column(1, "metric", pa.array(metrics, pa.string())))
    assert columnar_json(changed) == oracle_json(changed)
    assert batch_digest(changed) != batch_digest(frame)


def test_validity_is_never_cached_and_a_bad_column_after_a_good_one_is_named() -> None:
    good = wire.encode_batch(_batch(samples=30))
    wire.decode_batch(good)
    wire.decode_batch(good)
    batch = _batch(samples=30)
    table = batch_to_table(batch)
    rows = table.column("samples").combine_chunks()
    items = rows.values
    metrics = items.field("metric").to_pylist()
    metrics[4] = "cpu-utilisation"  # same length as a valid name, one byte not allowed
    bad_items = pa.StructArray.from_arrays(
        [items.field(i) if i != 1 else pa.array(metrics, pa.string()) for i in range(5)],
        fields=list(SAMPLES_SCHEMA))
    bad = table.set_column(table.schema.get_field_index("samples"), table.schema.field("samples"),
                           pa.ListArray.from_arrays(rows.offsets, bad_items,
                                                    type=table.schema.field("samples").type))
    with pytest.raises(BadInput, match="does not match") as err:
        frame_from_table(bad)
    assert err.value.field == "samples[4].metric"


def test_the_cache_is_bounded_by_entries_and_bytes() -> None:
    cache = _column_cache.ColumnCache(max_entries=3, max_bytes=10_000)
    keys = [_column_cache.column_key(pa.array([f"metric_{i}"] * 10)) for i in range(5)]
    for i, key in enumerate(keys):
        cache.put(key, "json", b"x" * 100)
        assert cache.get(key, "json") == b"x" * 100
        assert len(cache) == min(i + 1, 3)
    assert cache.evictions == 2
    assert cache.get(keys[0], "json") is None and cache.get(keys[4], "json") == b"x" * 100
    small = _column_cache.ColumnCache(max_entries=100, max_bytes=1_000)
    for key in keys:
        small.put(key, "json", b"y" * 400)
    assert small.size_bytes <= 1_000 and len(small) == 1
    assert small.get(keys[-1], "json") == b"y" * 400  # the newest stays


def test_a_column_too_big_to_remember_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_column_cache, "MAX_COLUMN_BYTES", 100)
    assert _column_cache.column_key(pa.array(["a" * 20] * 10)) is None
    assert _column_cache.column_key(pa.array(["a"] * 10)) is not None


def test_small_frames_hit_and_miss_alike_and_the_memo_is_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ipc, "_small_frames", {})
    bodies = [wire.encode_batch(_batch(samples=40, seq=s)) for s in range(1, 4)]
    for body in bodies * 2:  # misses, then hits
        rows = _ipc.read_one_batch(body)
        assert rows is not None and rows.equals(_arrow_only(body))
    assert 0 < len(_ipc._small_frames) <= _ipc.SMALL_FRAMES_KEPT
    assert all(len(key) <= _ipc.SMALL_FRAME_BYTES for key in _ipc._small_frames)
    assert all(len(data) <= _ipc.SMALL_FRAME_OUTPUT_BYTES for data in _ipc._small_frames.values())
    # a tiny frame that expands a lot (the offsets of 5,000 empty label maps) is not kept
    monkeypatch.setattr(_ipc, "_small_frames", {})
    no_labels = Batch(collector_id="c", host="h", producer_epoch="e", seq=1, sent_at_ns=1,
                      samples=[Sample(ts_ns=i, metric="m", entity="e", value=1.0)
                               for i in range(5000)])
    body = wire.encode_batch(no_labels)
    expanding = [(offset, length) for offset, length in _frames_of(body)
                 if length - 8 <= _ipc.SMALL_FRAME_BYTES
                 and struct.unpack_from("<q", body, offset)[0] > _ipc.SMALL_FRAME_OUTPUT_BYTES]
    assert expanding
    rows = _ipc.read_one_batch(body)
    assert rows is not None and rows.equals(_arrow_only(body))
    assert all(len(data) <= _ipc.SMALL_FRAME_OUTPUT_BYTES for data in _ipc._small_frames.values())
    for offset, length in expanding:
        assert body[offset + 8:offset + length] not in _ipc._small_frames
    monkeypatch.setattr(_ipc, "SMALL_FRAMES_KEPT", 5)
    monkeypatch.setattr(_ipc, "_small_frames", {})
    for body in bodies:
        rows = _ipc.read_one_batch(body)
        assert rows is not None and rows.equals(_arrow_only(body))
        assert len(_ipc._small_frames) <= 5


_ASCII = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=12)
_ANY = st.text(max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_ASCII, _ANY, st.sampled_from(["a", "_x", ":m", "9a", "é", "a\n",
                                                          "cpu_seconds_total", "A:b"])),
                min_size=1, max_size=20),
       st.sampled_from([contract.METRIC_PATTERN, contract.LABEL_KEY_PATTERN,
                        contract.EVENT_KIND_PATTERN]))
def test_byte_classes_agree_with_the_patterns(values: list[str], pattern: str) -> None:
    column = pa.array(values, pa.string())
    quick = _strings_clearly_valid(column, 10_000, False, pattern)
    by_regex = all(re.fullmatch(pattern, v) for v in values)
    by_arrow = pc.all(pc.match_substring_regex(column, pattern)).as_py()
    assert by_regex == by_arrow  # the oracles agree with each other
    if quick:
        assert by_regex  # never accepts what the pattern refuses
    if all(v.isascii() for v in values):
        assert quick == by_regex  # and misses no valid ASCII name (valid batches stay fast)
