"""The evidence view's columnar build, held to a plain row-by-row reference.

Replay rebuilds the view from a package's tables; the build sorts once and slices, so these
tests compare it with the obvious implementation (group rows in a dict, sort each group by
time) on real scenario telemetry: in arrival order, shuffled row by row, cut to a window,
and mixed with a second host.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sreagent.evidence import EvidencePackage
from sreagent.evidence.package import DICTIONARY_COLUMNS
from sreagent.evidence.tables import ROW_TABLES, frames_to_tables
from sreagent.runtime import EvidenceView, _columns, _view
from sreagent.scenarios import generate, load_scenario

Tables = dict[str, pa.Table]


@pytest.fixture(scope="module")
def tables() -> Tables:
    """Scenario 24 (an 8-GPU server: many labelled series) at 10 s resolution."""
    definition = load_scenario("24")
    definition = definition.model_validate({**definition.model_dump(), "resolution_s": 10})
    return frames_to_tables(generate(definition).frames)


def _reference_series(samples: pa.Table) -> dict[tuple[Any, ...], list[tuple[int, float]]]:
    """Series by (metric, entity, labels) as a row-by-row loop builds them."""
    groups: dict[tuple[Any, ...], list[tuple[int, float]]] = defaultdict(list)
    for row in samples.to_pylist():
        labels = tuple(sorted(row["labels"]))
        groups[(row["metric"], row["entity"], labels)].append((row["ts_ns"], row["value"]))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in groups.items()}


def _reference_spans(samples: pa.Table) -> list[tuple[str, int, int]]:
    spans: dict[str, list[int]] = {}
    for batch, ts in zip(samples.column("batch_id").to_pylist(),
                         samples.column("ts_ns").to_pylist(), strict=True):
        lo_hi = spans.setdefault(batch, [ts, ts])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], ts), max(lo_hi[1], ts)
    return sorted(((b, lo, hi) for b, (lo, hi) in spans.items()), key=lambda s: (s[1], s[0]))


def _shuffled(table: pa.Table, seed: int) -> pa.Table:
    order = np.random.default_rng(seed).permutation(table.num_rows)
    return table.take(pa.array(order))


def _assert_matches_reference(view: EvidenceView, samples: pa.Table) -> None:
    want = _reference_series(samples)

    def label_key(labels: tuple[tuple[str, str], ...]) -> str:
        return "\x1f".join(f"{k}={v}" for k, v in labels)

    assert list(view.series) == sorted(want, key=lambda k: (k[0], k[1], label_key(k[2])))
    for key, points in want.items():
        series = view.series[key]
        assert series.ts.tolist() == [t for t, _ in points]
        assert series.values.tolist() == [v for _, v in points]
    grid = sorted({t for points in want.values() for t, _ in points})
    assert view.grid.tolist() == grid
    spans = _reference_spans(samples)
    assert list(view.batch_ids) == [b for b, _, _ in spans]
    assert view.batch_first_ns.tolist() == [lo for _, lo, _ in spans]
    assert view.batch_last_ns.tolist() == [hi for _, _, hi in spans]
    assert view.sample_count == samples.num_rows


def test_the_view_matches_a_row_by_row_build(tables: Tables) -> None:
    view = EvidenceView.from_tables(tables)
    assert len(view.series) > 500  # GPUs, NVLinks, processes: many label sets
    _assert_matches_reference(view, tables["samples"])


def test_rows_in_any_order_give_the_same_view(tables: Tables) -> None:
    ordered = EvidenceView.from_tables(tables)
    shuffled = EvidenceView.from_tables(
        {name: _shuffled(t, seed) for seed, (name, t) in enumerate(tables.items())})
    _assert_matches_reference(shuffled, tables["samples"])
    assert shuffled.processes.equals(ordered.processes)
    assert shuffled.events == ordered.events
    assert shuffled.inventory == ordered.inventory
    assert shuffled.source_modes == ordered.source_modes


def test_a_window_keeps_exactly_its_rows(tables: Tables) -> None:
    ts = tables["samples"].column("ts_ns").to_numpy()
    lo, hi = int(ts.min()) + 600 * 10**9, int(ts.min()) + 1200 * 10**9
    view = EvidenceView.from_tables(tables, start_ns=lo, end_ns=hi)
    inside = tables["samples"].filter(
        pa.array((ts >= lo) & (ts <= hi)))
    _assert_matches_reference(view, inside)
    assert (view.start_ns, view.end_ns) == (lo, hi)
    assert all(lo <= t <= hi for t in view.processes["ts_ns"].to_list())


def test_one_host_is_picked_out_of_many(tables: Tables) -> None:
    host_field = pa.field("host", pa.string(), nullable=False)
    other = {name: t.set_column(t.schema.get_field_index("host"), host_field,
                                pa.array(["other-host"] * t.num_rows, pa.string()))
             for name, t in tables.items()}
    mixed = {name: pa.concat_tables([other[name], tables[name]]) for name in tables}
    host = tables["samples"].column("host")[0].as_py()
    view = EvidenceView.from_tables(mixed, host=host)
    _assert_matches_reference(view, tables["samples"])
    assert view.processes.height == tables["processes"].num_rows


def test_frames_and_tables_give_the_same_view(tables: Tables) -> None:
    definition = load_scenario("24")
    definition = definition.model_validate({**definition.model_dump(), "resolution_s": 10})
    from_frames = EvidenceView.from_frames(generate(definition).frames)
    _assert_matches_reference(from_frames, tables["samples"])
    assert from_frames.processes.equals(EvidenceView.from_tables(tables).processes)


def test_series_cannot_be_changed_in_place(tables: Tables) -> None:
    view = EvidenceView.from_tables(tables)
    series = next(iter(view.series.values()))
    with pytest.raises(ValueError, match="read-only"):
        series.values[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        view.grid[0] = 0


def test_a_verified_replay_reads_each_file_once(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from sreagent.replay import Replayer
    from sreagent.replay._lab import record_scenario

    record_scenario("01", tmp_path / "r01", resolution_s=10)
    reads: list[str] = []
    real = pq.read_table

    def counting(source: Any, *args: Any, **kwargs: Any) -> pa.Table:
        reads.append(str(source))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", counting)  # what sreagent.evidence.package calls
    assert Replayer().replay(tmp_path / "r01").identical
    assert len(reads) == 6  # verification decodes the six tables; the replay reuses them


def _as_read_from_a_package(tables: Tables, row_group_size: int) -> Tables:
    """The tables written to Parquet with small row groups and read back as a replay reads
    them: sample keys and process strings as dictionaries, one dictionary per row group (so
    chunks differ)."""
    out = dict(tables)
    for name in ("samples", "processes"):
        sink = pa.BufferOutputStream()
        pq.write_table(tables[name], sink, row_group_size=row_group_size)
        out[name] = pq.read_table(pa.BufferReader(sink.getvalue()),
                                  read_dictionary=DICTIONARY_COLUMNS[name])
    return out


def test_dictionary_columns_give_the_same_view(tables: Tables) -> None:
    encoded = _as_read_from_a_package(tables, row_group_size=7_919)
    samples = encoded["samples"]
    assert pa.types.is_dictionary(samples.schema.field("metric").type)
    metric = samples.column("metric")
    assert metric.num_chunks > 3
    assert not metric.chunk(0).dictionary.equals(metric.chunk(metric.num_chunks - 1).dictionary)
    view = EvidenceView.from_tables(encoded)
    _assert_matches_reference(view, tables["samples"])
    assert pa.types.is_dictionary(encoded["processes"].schema.field("comm").type)
    plain = EvidenceView.from_tables(tables)
    assert list(view.series) == list(plain.series)
    assert view.processes.equals(plain.processes)
    assert view.processes.schema == plain.processes.schema


def test_dictionary_columns_in_any_order_cut_to_a_window(tables: Tables) -> None:
    shuffled = {name: _shuffled(t, seed) for seed, (name, t) in enumerate(tables.items())}
    encoded = _as_read_from_a_package(shuffled, row_group_size=50_000)
    ts = tables["samples"].column("ts_ns").to_numpy()
    lo, hi = int(ts.min()) + 300 * 10**9, int(ts.min()) + 900 * 10**9
    view = EvidenceView.from_tables(encoded, start_ns=lo, end_ns=hi)
    _assert_matches_reference(view, tables["samples"].filter(pa.array((ts >= lo) & (ts <= hi))))
    assert view.processes.equals(
        EvidenceView.from_tables(tables, start_ns=lo, end_ns=hi).processes)


def test_label_sets_with_more_pairs_than_one_number_holds(
        tables: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    """Label sets are numbered by folding pair after pair when (pairs + 1) ** longest set
    does not fit one integer; forced here, it must give the same view."""
    monkeypatch.setattr(_columns, "EXACT_INT", 2)
    encoded = _as_read_from_a_package(tables, row_group_size=50_000)
    _assert_matches_reference(EvidenceView.from_tables(encoded), tables["samples"])
    _assert_matches_reference(EvidenceView.from_tables(tables), tables["samples"])


def test_key_spaces_too_large_for_a_table_are_sorted(
        tables: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_columns, "DENSE_LIMIT", 16)
    monkeypatch.setattr(_view, "DENSE_LIMIT", 16)
    encoded = _as_read_from_a_package(tables, row_group_size=50_000)
    _assert_matches_reference(EvidenceView.from_tables(encoded), tables["samples"])


def test_labels_holding_the_separators_stay_apart() -> None:
    """A label value may hold '=' or the unit separator; two different sets whose k=v texts
    look alike are still two series, each with its own labels."""
    host = "node-1"
    rows = [
        {"batch_id": "b1", "host": host, "ts_ns": 1, "metric": "m", "entity": "e",
         "labels": [("a", "1\x1fb=2")], "value": 1.0},
        {"batch_id": "b1", "host": host, "ts_ns": 1, "metric": "m", "entity": "e",
         "labels": [("a", "1"), ("b", "2")], "value": 2.0},
        {"batch_id": "b2", "host": host, "ts_ns": 2, "metric": "m", "entity": "e",
         "labels": [("a", "x=y")], "value": 3.0},
    ]
    samples = pa.Table.from_pylist(rows, schema=ROW_TABLES["samples"])
    empty = {name: ROW_TABLES[name].empty_table() for name in ("processes", "events")}
    view = EvidenceView.from_tables({"samples": samples, **empty})
    assert sorted(view.series) == sorted([
        ("m", "e", (("a", "1\x1fb=2"),)), ("m", "e", (("a", "1"), ("b", "2"))),
        ("m", "e", (("a", "x=y"),))])
    assert view.get("m", "e", a="1", b="2").values.tolist() == [2.0]  # type: ignore[union-attr]
    assert view.get("m", "e", a="x=y").values.tolist() == [3.0]  # type: ignore[union-attr]


def test_verification_hands_the_view_dictionary_columns(tmp_path: Path) -> None:
    from sreagent.evidence import verify_package
    from sreagent.replay._lab import record_scenario

    record_scenario("01", tmp_path / "r01", resolution_s=10)
    package = verify_package(tmp_path / "r01").package
    assert package is not None
    encoded = package.encoded_table("samples")
    assert pa.types.is_dictionary(encoded.schema.field("entity").type)
    # What everyone else reads is the contract's schema, with the same content.
    plain = package.table("samples")
    assert plain.schema.equals(ROW_TABLES["samples"])
    assert plain.equals(pq.read_table(tmp_path / "r01" / "samples.parquet"))
    unverified = EvidencePackage(tmp_path / "r01")
    assert unverified.encoded_table("samples").equals(encoded)


def test_series_stats_have_the_bits_of_numpy_on_each_series(tables: Tables) -> None:
    """The observer summarises every series through series_stats(); its figures must be the
    very floats numpy gives for each series alone, or a replay's artifact ids would change.
    With one row in ten dropped at random, the series differ in length and do not lie back
    to back by length."""
    keep = np.random.default_rng(3).random(tables["samples"].num_rows) > 0.1
    gappy = {**tables, "samples": _shuffled(tables["samples"].filter(pa.array(keep)), 4)}
    for view in (EvidenceView.from_tables(tables),
                 EvidenceView.from_tables(_as_read_from_a_package(gappy, 9_973))):
        stats = view.series_stats()
        assert stats.keys == tuple(view.series)
        lengths = {len(s) for s in view.series.values()}
        for i, series in enumerate(view.series.values()):
            v = series.values
            assert stats.count[i] == v.shape[0]
            for got, want in ((stats.last[i], v[-1]), (stats.mean[i], v.mean()),
                              (stats.minimum[i], v.min()), (stats.maximum[i], v.max())):
                assert np.float64(got).tobytes() == np.float64(want).tobytes()
    assert len(lengths) > 1


def test_more_key_combinations_than_32_bits_hold() -> None:
    """1,300 metrics x 1,300 entities x 1,300 label sets is more combinations than an int32
    counts (and than a table could hold); every row still lands in its own series."""
    n = 1_300
    rows = [{"batch_id": f"b{i // 100}", "host": "node-1", "ts_ns": i // 100, "metric": f"m{i}",
             "entity": f"e{(i * 7) % n}", "labels": [("k", f"v{(i * 11) % n}")],
             "value": float(i)} for i in range(n)]
    samples = pa.Table.from_pylist(rows, schema=ROW_TABLES["samples"])
    empty = {name: ROW_TABLES[name].empty_table() for name in ("processes", "events")}
    for table in (samples, _as_read_from_a_package({"samples": samples, **{
            "processes": ROW_TABLES["processes"].empty_table()}}, 300)["samples"]):
        view = EvidenceView.from_tables({"samples": table, **empty})
        _assert_matches_reference(view, samples)


def test_a_dictionary_that_repeats_a_string_gives_one_series() -> None:
    """Arrow lets a dictionary hold a string twice; rows pointing at either copy are still
    one series (and one batch)."""
    words = pa.array(["cpu", "mem", "cpu"])
    metric = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 0], pa.int32()), words)
    batch = pa.DictionaryArray.from_arrays(pa.array([0, 0, 2, 2], pa.int32()),
                                           pa.array(["b1", "b2", "b1"]))
    plain = pa.Table.from_pylist(
        [{"batch_id": "b1", "host": "h", "ts_ns": t, "metric": m, "entity": "host",
          "labels": [], "value": float(t)} for t, m in enumerate(["cpu", "mem", "cpu", "cpu"])],
        schema=ROW_TABLES["samples"])
    samples = plain.set_column(plain.schema.get_field_index("metric"), "metric", metric) \
        .set_column(0, "batch_id", batch)
    empty = {name: ROW_TABLES[name].empty_table() for name in ("processes", "events")}
    view = EvidenceView.from_tables({"samples": samples, **empty})
    _assert_matches_reference(view, plain)
    assert view.get("cpu").values.tolist() == [0.0, 2.0, 3.0]  # type: ignore[union-attr]
