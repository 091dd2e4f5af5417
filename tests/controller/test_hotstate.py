"""Hot state: ring semantics and every bound, with evictions counted."""

from __future__ import annotations

import numpy as np
import pytest

from sreagent.controller.hotstate import HotState, Ring, _group_series
from sreagent.telemetry import Batch, BatchFrame, Sample, frame_from_batch
from tests.controller.helpers import make_batch


@pytest.mark.parametrize("chunks", [[1] * 30, [5, 7, 3, 20], [25], [3, 40], [16, 1, 16]])
def test_ring_keeps_the_newest_capacity_samples_in_order(chunks: list[int]) -> None:
    ring = Ring(10, initial=2)
    expected: list[int] = []
    overwritten = 0
    start = 0
    for n in chunks:
        ts = np.arange(start, start + n, dtype=np.int64)
        overwritten += ring.extend(ts, ts.astype(float) * 2)
        expected += list(range(start, start + n))
        start += n
    ts, values = ring.arrays()
    assert ts.tolist() == expected[-10:]
    assert values.tolist() == [2.0 * t for t in expected[-10:]]
    assert overwritten == max(0, len(expected) - 10)
    assert ring.last(3).tolist() == [2.0 * t for t in expected[-3:]]


def _hot(**limits: int) -> HotState:
    values = {"max_hosts": 2, "max_series_per_host": 3, "samples_per_series": 4,
              "events_per_host": 2, **limits}
    return HotState(**values)


def test_host_limit_evicts_the_least_recently_updated() -> None:
    hot = _hot()
    for host in ("a", "b", "a", "c"):
        hot.append(frame_from_batch(make_batch(host=host, samples=1)))
    assert set(hot.hosts()) == {"a", "c"}
    assert hot.stats()["evictions"]["hosts"] == 1


def test_series_samples_and_events_limits_are_counted() -> None:
    hot = _hot()
    for seq, metric in enumerate(["m_a", "m_b", "m_c", "m_d", "m_e"], start=1):
        hot.append(frame_from_batch(make_batch(seq=seq, metric=metric, samples=6, events=2)))
    stats = hot.stats()
    assert stats["series"] == 3 and stats["evictions"]["series_dropped"] == 2
    assert stats["samples"] == 3 * 4 and stats["evictions"]["samples_overwritten"] == 3 * 2
    assert stats["events"] == 2 and stats["evictions"]["events_overwritten"] == 8
    window = hot.window("node-1", 0, 2**62)
    assert sorted(s["metric"] for s in window) == ["m_a", "m_b", "m_c"]
    assert all(np.all(np.diff(s["ts_ns"]) >= 0) for s in window)


def _reference_groups(frame: BatchFrame) -> dict:
    """Row by row: what _group_series must equal (series in order of first appearance, each
    stably sorted by time)."""
    out: dict = {}
    for row in frame.samples.to_pylist():
        key = (row["metric"], row["entity"], tuple(sorted(row["labels"])))
        out.setdefault(key, []).append((row["ts_ns"], row["value"]))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in out.items()}


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_grouping_equals_row_by_row(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = 1 + int(rng.integers(0, 400))
    samples = [Sample(ts_ns=int(rng.integers(0, 50)) + 10**18,
                      metric=str(rng.choice(["cpu_utilisation_ratio", "disk_await_seconds",
                                             "memory_used_ratio"])),
                      entity=str(rng.choice(["host", "disk/sda", "cpu/0", "cpu/1"])),
                      labels={} if rng.random() < 0.6 else
                      {str(k): str(rng.choice(["a", "b"]))
                       for k in rng.choice(["mode", "kind", "zone"],
                                           size=int(rng.integers(1, 3)), replace=False)},
                      value=float(rng.random())) for _ in range(rows)]
    frame = frame_from_batch(Batch(collector_id="c", host="h", producer_epoch="e", seq=1,
                                   sent_at_ns=10**18, samples=samples))
    groups = _group_series(frame)
    expected = _reference_groups(frame)
    assert list(groups) == list(expected)
    for key, (ts, values) in groups.items():
        assert list(zip(ts.tolist(), values.tolist(), strict=True)) == expected[key]


@pytest.mark.parametrize("seed", range(8))
def test_the_vectorised_table_equals_one_ring_per_series(seed: int) -> None:
    """HotState's per-host matrix against the reference: one Ring per series fed row by row
    groups, over batches that grow the matrix, wrap rings, overflow a ring in one batch and
    hit the series limit."""
    rng = np.random.default_rng(seed)
    capacity, max_series = int(rng.integers(2, 40)), int(rng.integers(1, 12))
    hot = HotState(max_hosts=10, max_series_per_host=max_series, samples_per_series=capacity,
                   events_per_host=1)
    reference: dict = {}
    overwritten = dropped = 0
    clock = 10**18
    for seq in range(1, 25):
        rows = int(rng.integers(1, 3 * capacity + 5))
        samples = []
        for _ in range(rows):
            clock += int(rng.integers(0, 3))
            samples.append(Sample(
                ts_ns=clock - int(rng.integers(0, 4)),  # a little out of order
                metric=str(rng.choice(["cpu_utilisation_ratio", "memory_used_ratio"])),
                entity=f"cpu/{int(rng.integers(0, 6))}",
                labels={} if rng.random() < 0.7 else {"mode": str(rng.choice(["a", "b"]))},
                value=float(rng.random())))
        frame = frame_from_batch(Batch(collector_id="c", host="h", producer_epoch="e", seq=seq,
                                       sent_at_ns=clock, samples=samples))
        added_overwritten, added_dropped = _append_beside_reference(hot, reference, frame,
                                                                    capacity, max_series)
        overwritten, dropped = overwritten + added_overwritten, dropped + added_dropped
        stats = hot.stats()
        assert stats["samples"] == sum(r.count for r in reference.values())
        assert stats["evictions"]["samples_overwritten"] == overwritten
        assert stats["evictions"]["series_dropped"] == dropped
    for key, ring in reference.items():
        if key[2] == ():
            assert hot.last_values("h", key[0], key[1], 3).tolist() == ring.last(3).tolist()


def _reference_groups_arrays(frame: BatchFrame) -> dict:
    return {k: (np.array([t for t, _ in v], np.int64), np.array([x for _, x in v]))
            for k, v in _reference_groups(frame).items()}


def _append_beside_reference(hot: HotState, reference: dict, frame: BatchFrame, capacity: int,
                             max_series: int) -> tuple[int, int]:
    """Append a batch to HotState and to one Ring per series, check both hold the same, and
    return what the reference counted: (samples overwritten, series dropped)."""
    hot.append(frame)
    overwritten = dropped = 0
    for key, (ts, values) in _reference_groups_arrays(frame).items():
        if key not in reference:
            if len(reference) >= max_series:
                dropped += 1
                continue
            reference[key] = Ring(capacity, initial=16)
        overwritten += reference[key].extend(ts, values)
    _assert_hot_state_equals(hot, reference)
    return overwritten, dropped


def _assert_hot_state_equals(hot: HotState, reference: dict) -> None:
    got = {(s["metric"], s["entity"], tuple(sorted(s["labels"].items()))):
           (s["ts_ns"].tolist(), s["values"].tolist())
           for s in hot.window("h", 0, 2**62)}
    want = {k: (r.arrays()[0].tolist(), r.arrays()[1].tolist()) for k, r in reference.items()}
    assert got == want


@pytest.mark.parametrize("seed", range(6))
def test_a_repeated_series_layout_reuses_rows_and_still_equals_one_ring_per_series(
        seed: int) -> None:
    """Collectors send the same series in the same order every interval, and HotState reuses
    the last batch's rows for an equal layout. Batches here repeat one of a few layouts
    (same series and order, with new times and values), reorder one, or add series past the
    series limit; the contents must stay those of one Ring per series."""
    rng = np.random.default_rng(100 + seed)
    capacity, max_series = int(rng.integers(2, 12)), int(rng.integers(3, 9))
    hot = HotState(max_hosts=10, max_series_per_host=max_series, samples_per_series=capacity,
                   events_per_host=1)
    series = [("cpu_utilisation_ratio", f"cpu/{i}", {} if i % 3 else {"mode": "user"})
              for i in range(10)]
    layouts = [series[:4], series[:4] * 2, list(reversed(series[:4])), series[:7], series]
    reference: dict = {}
    overwritten = dropped = 0
    clock = 10**18
    for seq in range(1, 40):
        layout = layouts[int(rng.integers(0, len(layouts)))] if seq % 4 else layouts[0]
        samples = []
        for metric, entity, labels in layout:
            clock += int(rng.integers(0, 3))
            samples.append(Sample(ts_ns=clock, metric=metric, entity=entity, labels=labels,
                                  value=float(rng.random())))
        frame = frame_from_batch(Batch(collector_id="c", host="h", producer_epoch="e", seq=seq,
                                       sent_at_ns=clock, samples=samples))
        added_overwritten, added_dropped = _append_beside_reference(hot, reference, frame,
                                                                    capacity, max_series)
        overwritten, dropped = overwritten + added_overwritten, dropped + added_dropped
        stats = hot.stats()["evictions"]
        assert (stats["samples_overwritten"], stats["series_dropped"]) == (overwritten, dropped)
