"""Hot state: ring semantics and every bound, with evictions counted."""

from __future__ import annotations

import numpy as np
import pytest

from sreagent.controller.hotstate import HotState, Ring
from sreagent.telemetry import frame_from_batch
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
