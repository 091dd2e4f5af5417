"""The columnar ``batch_digest`` writes the same canonical JSON as the Python-object one.

The oracle below is the implementation ``batch_digest`` had before it was written column by
column (``Table.to_pydict()`` + ``canonical_json``); the digest is a contract (dedupe keys,
evidence packages, goldens), so the two are compared byte for byte on randomised tables:
unicode and characters JSON must escape, empty tables, many labels per row, duplicate label
keys, negative zero, huge and tiny floats, integers near 2^63, nulls in the nullable columns.
Each comparison runs twice: with the Python path for small columns (the default) and with
every column forced through the Arrow path; and within each, string columns once computed and
once from the column cache (sreagent.telemetry._column_cache).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sreagent.canonical import canonical_json, sha256_hex
from sreagent.errors import NonFiniteValue
from sreagent.telemetry import _digest
from sreagent.telemetry._column_cache import STRING_COLUMNS
from sreagent.telemetry.arrow import (
    EVENTS_SCHEMA,
    PROCESSES_SCHEMA,
    SAMPLES_SCHEMA,
    BatchFrame,
    BatchHeader,
)
from sreagent.telemetry.wire import batch_digest

HEADER = BatchHeader(schema_version="sreagent.batch/v1", collector_id="c-1", host="node-1",
                     producer_epoch="e1", seq=7, sent_at_ns=1_767_225_600_000_000_000,
                     labels={"zone": "b", "rack": "r1"})


def oracle_json(frame: BatchFrame) -> bytes:
    """The canonical content exactly as the Python-object implementation built it."""
    content: dict[str, Any] = {"header": frame.header.model_dump(mode="json")}
    for name in ("samples", "processes", "events"):
        columns = dict(getattr(frame, name).to_pydict())
        for key in ("labels", "attributes"):
            if key in columns:
                columns[key] = [sorted(v) if v else [] for v in columns[key]]
        content[name] = columns
    return canonical_json(content)


def columnar_json(frame: BatchFrame) -> bytes:
    chunks: list[bytes] = []
    _digest.emit_frame(lambda piece: chunks.append(bytes(piece)),
                       canonical_json(frame.header.model_dump(mode="json")),
                       {"samples": frame.samples, "processes": frame.processes,
                        "events": frame.events})
    return b"".join(chunks)


@pytest.fixture(params=["default", "all-columnar"])
def columnar_from(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    rows = _digest.COLUMNAR_FROM_ROWS if request.param == "default" else 1
    monkeypatch.setattr(_digest, "COLUMNAR_FROM_ROWS", rows)
    return rows


def assert_same(frame: BatchFrame) -> None:
    expected = oracle_json(frame)
    STRING_COLUMNS.clear()  # string columns computed (a miss each), then remembered
    got = columnar_json(frame)
    assert got == expected
    assert columnar_json(frame) == expected  # the remembered string columns (hits)
    assert batch_digest(frame) == sha256_hex(expected)


# --- strategies ------------------------------------------------------------------------------

# Characters JSON escapes (quote, backslash, control characters), non-ASCII of every UTF-8
# length, and characters whose UTF-8 byte order could differ from a naive sort if one were
# wrong (U+FFFF against astral code points).
_ALPHABET = st.sampled_from(
    ['a', 'b', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\x00', '\x1f', '\x7f', 'é', 'ß',
     '€', '\u2028', '\uffff', '😀', '𝄞', '中', '文'])
_TEXT = st.text(alphabet=_ALPHABET, max_size=12)
_FEW_TEXTS = st.lists(_TEXT, min_size=1, max_size=4)
_FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.1, 1e16, 1e-5, 1e-7, 123456789012345678.0,
                     5e-324, -5e-324, 1.7976931348623157e308, 2.2250738585072014e-308]),
)
_INTS = st.one_of(st.integers(-(2**63), 2**63 - 1),
                  st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**53 + 1, 10**18]))
_LABELS = st.lists(st.tuples(_TEXT, _TEXT), max_size=6)


@st.composite
def sample_tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(0, 40))
    # Repeated values (like metric names) as well as distinct ones.
    metrics = draw(_FEW_TEXTS)
    return pa.Table.from_pydict({
        "ts_ns": draw(st.lists(_INTS, min_size=rows, max_size=rows)),
        "metric": [metrics[draw(st.integers(0, len(metrics) - 1))] for _ in range(rows)],
        "entity": draw(st.lists(_TEXT, min_size=rows, max_size=rows)),
        "labels": draw(st.lists(_LABELS, min_size=rows, max_size=rows)),
        "value": draw(st.lists(_FLOATS, min_size=rows, max_size=rows)),
    }, schema=SAMPLES_SCHEMA)


def _nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def process_tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(0, 8))
    columns: dict[str, list[Any]] = {}
    for field in PROCESSES_SCHEMA:
        if pa.types.is_string(field.type):
            values = st.lists(_TEXT, min_size=rows, max_size=rows)
        elif pa.types.is_int32(field.type):
            values = st.lists(st.integers(-(2**31), 2**31 - 1), min_size=rows, max_size=rows)
        elif pa.types.is_integer(field.type):
            inner = _nullable(_INTS) if field.nullable else _INTS
            values = st.lists(inner, min_size=rows, max_size=rows)
        else:
            inner = _nullable(_FLOATS) if field.nullable else _FLOATS
            values = st.lists(inner, min_size=rows, max_size=rows)
        columns[field.name] = draw(values)
    return pa.Table.from_pydict(columns, schema=PROCESSES_SCHEMA)


@st.composite
def event_tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(0, 8))

    def texts() -> list[str]:
        return draw(st.lists(_TEXT, min_size=rows, max_size=rows))

    return pa.Table.from_pydict({
        "ts_ns": draw(st.lists(_INTS, min_size=rows, max_size=rows)),
        "kind": texts(), "entity": texts(), "source": texts(), "severity": texts(),
        "message": texts(),
        "attributes": draw(st.lists(_LABELS, min_size=rows, max_size=rows)),
    }, schema=EVENTS_SCHEMA)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(samples=sample_tables(), processes=process_tables(), events=event_tables())
def test_randomised_frames_have_the_oracles_bytes(samples: pa.Table, processes: pa.Table,
                                                  events: pa.Table) -> None:
    frame = BatchFrame(header=HEADER, samples=samples, processes=processes, events=events)
    for rows in (_digest.COLUMNAR_FROM_ROWS, 1):  # the Python path for small columns, then Arrow
        original = _digest.COLUMNAR_FROM_ROWS
        _digest.COLUMNAR_FROM_ROWS = rows
        try:
            assert_same(frame)
        finally:
            _digest.COLUMNAR_FROM_ROWS = original


def _big_samples(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    names = np.array(["cpu_utilisation_ratio", "memory_used_bytes", "gpu_temp_celsius",
                      'quote"d', "back\\slash", "ünïcødé", "emoji😀"], dtype=object)
    label_pool = [[], [], [], [("gpu", "0")], [("zone", "a"), ("gpu", "1")],
                  [("k", "v2"), ("k", "v1")], [(f"key{i}", f"v{i % 3}") for i in range(40)]]
    values = rng.standard_normal(rows) * 10.0 ** rng.integers(-300, 300, rows)
    values[rng.random(rows) < 0.3] = 0.0
    values[rng.random(rows) < 0.05] = -0.0
    values[rng.random(rows) < 0.2] = 0.25  # repeats: the distinct-value path for floats
    return pa.Table.from_pydict({
        "ts_ns": (2**63 - 1 - rng.integers(0, 10**6, rows)).tolist(),
        "metric": names[rng.integers(0, len(names), rows)].tolist(),
        "entity": [f"dev/{i}" for i in rng.integers(0, rows, rows)],  # mostly distinct
        "labels": [label_pool[i] for i in rng.integers(0, len(label_pool), rows)],
        "value": values.tolist(),
    }, schema=SAMPLES_SCHEMA)


@pytest.mark.parametrize("rows", [0, 1, 5, 500, 1023, 1024, 5000])
def test_batches_of_every_size_have_the_oracles_bytes(rows: int, columnar_from: int) -> None:
    frame = BatchFrame(header=HEADER, samples=_big_samples(rows, seed=rows),
                       processes=PROCESSES_SCHEMA.empty_table(),
                       events=EVENTS_SCHEMA.empty_table())
    assert_same(frame)


def test_sliced_and_chunked_columns_have_the_oracles_bytes(columnar_from: int) -> None:
    whole = _big_samples(3000, seed=3)
    sliced = whole.slice(1000, 1500)  # offsets into shared buffers, label offsets not at 0
    chunked = pa.concat_tables([whole.slice(0, 1200), whole.slice(1200)])
    for table in (sliced, chunked):
        assert_same(BatchFrame(header=HEADER, samples=table,
                               processes=PROCESSES_SCHEMA.empty_table(),
                               events=EVENTS_SCHEMA.empty_table()))


def test_null_label_maps_are_written_as_empty(columnar_from: int) -> None:
    maps = pa.array([[("b", "1"), ("a", "2")], None, [("c", "3")], None] * 300,
                    type=SAMPLES_SCHEMA.field("labels").type)
    rows = len(maps)
    samples = pa.Table.from_arrays(
        [pa.array(range(rows), pa.int64()), pa.array(["m"] * rows), pa.array(["e"] * rows),
         maps, pa.array([1.5] * rows)], schema=SAMPLES_SCHEMA.remove_metadata())
    assert_same(BatchFrame(header=HEADER, samples=samples,
                           processes=PROCESSES_SCHEMA.empty_table(),
                           events=EVENTS_SCHEMA.empty_table()))


def test_different_content_has_a_different_digest() -> None:
    base = _big_samples(2000, seed=1)
    frame = BatchFrame(header=HEADER, samples=base, processes=PROCESSES_SCHEMA.empty_table(),
                       events=EVENTS_SCHEMA.empty_table())
    values = base.column("value").to_pylist()
    values[1999] = 12345.678 if values[1999] != 12345.678 else 0.5  # one value changed
    changed = base.set_column(4, "value", pa.array(values, pa.float64()))
    other = BatchFrame(header=HEADER, samples=changed, processes=frame.processes,
                       events=frame.events)
    zero = [0.0] * 2000
    negative_zero = [-0.0] * 2000
    zeros = [base.set_column(4, "value", pa.array(v, pa.float64())) for v in (zero,
                                                                               negative_zero)]
    digests = {batch_digest(f) for f in (
        frame, other, *(BatchFrame(header=HEADER, samples=t, processes=frame.processes,
                                   events=frame.events) for t in zeros))}
    assert len(digests) == 4


@pytest.mark.parametrize("rows", [3, 3000])
def test_a_non_finite_value_is_named(rows: int) -> None:
    table = _big_samples(rows, seed=5)
    values = table.column("value").to_pylist()
    values[rows - 1] = float("inf")
    frame = BatchFrame(header=HEADER, samples=table.set_column(
        4, "value", pa.array(values, pa.float64())), processes=PROCESSES_SCHEMA.empty_table(),
        events=EVENTS_SCHEMA.empty_table())
    with pytest.raises(NonFiniteValue, match=f"samples.value\\[{rows - 1}\\]"):
        batch_digest(frame)


def test_the_digest_streams_into_the_hash_in_pieces() -> None:
    frame = BatchFrame(header=HEADER, samples=_big_samples(2000, seed=9),
                       processes=PROCESSES_SCHEMA.empty_table(),
                       events=EVENTS_SCHEMA.empty_table())
    streamed = hashlib.sha256()
    _digest.emit_frame(streamed.update, canonical_json(HEADER.model_dump(mode="json")),
                       {"samples": frame.samples, "processes": frame.processes,
                        "events": frame.events})
    assert streamed.hexdigest() == hashlib.sha256(oracle_json(frame)).hexdigest()


@pytest.mark.parametrize("rows", [4, 500, 1500])
def test_repeated_floats_keep_negative_zero_and_name_a_non_finite_one(rows: int) -> None:
    # mostly repeats: the per-distinct-value path, under and over COLUMNAR_FROM_ROWS
    base = _big_samples(rows, seed=11)

    def with_values(values: list[float]) -> BatchFrame:
        return BatchFrame(header=HEADER, samples=base.set_column(
            4, "value", pa.array(values, pa.float64())), processes=PROCESSES_SCHEMA.empty_table(),
            events=EVENTS_SCHEMA.empty_table())

    zeros = with_values([0.0, -0.0, 0.25, 0.0] * (rows // 4))
    assert_same(zeros)
    assert batch_digest(zeros) != batch_digest(with_values([0.0, 0.0, 0.25, 0.0] * (rows // 4)))
    values = [0.25] * rows
    values[rows - 2] = float("-inf")
    with pytest.raises(NonFiniteValue, match=f"samples.value\\[{rows - 2}\\]"):
        batch_digest(with_values(values))
