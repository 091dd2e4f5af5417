"""GPU fleet schedules calibrated on the InfiniteHBD trace."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sreagent.scenarios import FLEET_CLASS_STATS, FaultClass, fleet_schedule
from sreagent.scenarios._fleet import UNMAPPED_EPISODES, compute_fleet_stats

TRACE = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "infinitehbd" / "faults.parquet"


def test_embedded_statistics_are_the_traces() -> None:
    if not TRACE.exists():
        pytest.skip(f"the InfiniteHBD trace is not at {TRACE}")
    stats, unmapped = compute_fleet_stats(TRACE)
    assert stats == FLEET_CLASS_STATS
    assert unmapped == UNMAPPED_EPISODES
    assert sum(s.episodes for s in stats.values()) + unmapped == 584


def test_schedule_follows_the_class_mix_and_is_seeded() -> None:
    servers, days = 2_000, 365.0
    episodes = fleet_schedule(11, servers, days)
    assert episodes == fleet_schedule(11, servers, days)
    assert episodes != fleet_schedule(12, servers, days)
    counts = Counter(e.fault_class for e in episodes)
    for klass, stats in FLEET_CLASS_STATS.items():
        expected = stats.rate_per_server_day * servers * days
        # Poisson: within 5 standard deviations of the trace's rate.
        assert abs(counts[klass] - expected) <= 5 * np.sqrt(expected) + 1, klass
    # Durations: log-normal with the trace's parameters (mean of logs within 4 standard errors).
    ecc = FLEET_CLASS_STATS[FaultClass.GPU_ECC_DBE]
    logs = np.log([e.duration_s / 3600 for e in episodes if e.fault_class == FaultClass.GPU_ECC_DBE])
    assert abs(logs.mean() - ecc.log_hours_mean) < 4 * ecc.log_hours_std / np.sqrt(len(logs))
    assert abs(logs.std() - ecc.log_hours_std) < 0.25 * ecc.log_hours_std
    assert all(0 <= e.server < servers and 0 <= e.start_s <= days * 86_400 for e in episodes)
