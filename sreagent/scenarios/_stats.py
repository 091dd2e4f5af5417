"""The statistic that says whether a series moved beyond its baseline.

One definition serves the scenario tests ("the labelled metrics move, the others do not") and
the ground truth's visibility time, so the two cannot disagree.

* **Gauges**: the baseline band is the baseline window's interquartile range widened by
  ``m = max(3 * 1.4826 * MAD, 5 % of |median|, floor)`` (floor 0.01 for ratios, 0.5 for
  booleans, 1.5 for counts of tasks, requests, sockets, processes and fds, 1e-9 otherwise). Quartiles rather than extremes, so recurring benign bursts
  (cron, backups, checkpoints: well under a quarter of the time) neither widen the band nor
  count as movement. A gauge *moved* when at least 30 % of its fault-window samples lie
  outside the band, or when it was present through the baseline and is absent for at least
  half of the fault window (a device that stops reporting has moved).
* **Counters** (``_total``): per-step increments (a decrease is a reset and counts as the new
  value), taken from the sample before the window to its end. A counter *moved* when its
  increase differs from the baseline rate times the window length by more than
  ``25 % + 3 * std * sqrt(n) + 0.5``.

A gauge becomes *visible* at the first of three consecutive samples outside the band (or
absent); a counter when its increase since onset first exceeds the counter margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sreagent.telemetry.names import METRICS_BY_NAME

VISIBLE_RUN = 3
"""A gauge becomes visible at the first of this many consecutive out-of-band samples."""
EXCEEDANCE_SHARE = 0.3
"""Share of fault-window samples outside the baseline band for a gauge to have moved."""


_FLOORS = {"ratio": 0.01, "bool": 0.5, "tasks": 1.5, "requests": 1.5, "sockets": 1.5,
           "processes": 1.5, "fds": 1.5}
"""Smallest margin by unit: a change of one task or socket is not a movement."""


def _floor(metric: str) -> float:
    return _FLOORS.get(METRICS_BY_NAME[metric].unit, 1e-9)


def increments(values: np.ndarray) -> np.ndarray:
    """Per-step increments of a counter (first element 0); a decrease is a reset."""
    diff = np.diff(values, prepend=values[:1])
    return np.where(diff < 0, values, diff)


@dataclass(frozen=True)
class Band:
    """A gauge's baseline band, or a counter's baseline increment rate."""

    low: float
    high: float
    rate: float = 0.0
    rate_std: float = 0.0


def baseline_band(metric: str, base: np.ndarray) -> Band:
    """The band (gauges) or increment rate (counters) of a series' baseline samples."""
    if METRICS_BY_NAME[metric].type == "counter":
        inc = increments(base)[1:] if len(base) > 1 else np.zeros(1)
        return Band(0.0, 0.0, float(inc.mean()), float(inc.std()))
    q25, median, q75 = (float(q) for q in np.quantile(base, [0.25, 0.5, 0.75]))
    mad = float(np.median(np.abs(base - median)))
    margin = max(3 * 1.4826 * mad, 0.05 * abs(median), _floor(metric))
    return Band(q25 - margin, q75 + margin)


def _counter_margin(band: Band, n: np.ndarray | int) -> np.ndarray | float:
    return 0.25 * abs(band.rate) * n + 3 * band.rate_std * np.sqrt(n) + 0.5


def moved(metric: str, values: np.ndarray, present: np.ndarray, base: slice,
          window: slice) -> bool:
    """Whether a series moved in ``window`` relative to ``base`` (module docstring).

    ``values`` and ``present`` are the whole series (one entry per step); ``base`` and
    ``window`` select steps.
    """
    base_present = present[base]
    if base_present.mean() < 0.8 or base_present.sum() < 10:
        return False  # no baseline to compare against (a process that started later)
    window_present = present[window]
    if window_present.mean() <= 0.5:
        return True
    band = baseline_band(metric, values[base][base_present])
    if METRICS_BY_NAME[metric].type == "counter":
        start = max(window.start - 1, 0)
        span = values[start: window.stop][present[start: window.stop]]
        increase = float(increments(span)[1:].sum())
        n = len(span) - 1
        return bool(abs(increase - band.rate * n) > _counter_margin(band, n))
    inside = values[window][window_present]
    outside = (inside < band.low) | (inside > band.high)
    return bool(outside.mean() >= EXCEEDANCE_SHARE)


def first_deviation(metric: str, band: Band, values: np.ndarray, present: np.ndarray,
                    start: int) -> int | None:
    """First step at or after ``start`` where the series visibly deviates (or vanishes)."""
    tail, tail_present = values[start:], present[start:]
    if METRICS_BY_NAME[metric].type == "counter":
        span = values[max(start - 1, 0):]
        inc = np.where(tail_present, increments(span)[len(span) - len(tail):], 0.0)
        n = np.arange(1, len(tail) + 1)
        excess = np.abs(np.cumsum(inc) - band.rate * n) - _counter_margin(band, n)
        hits = np.flatnonzero(excess > 0)
    else:
        out = ~tail_present | (tail < band.low) | (tail > band.high)
        # Sustained, not a single noisy sample: out of band for VISIBLE_RUN samples in a row.
        run = out[: len(out) - VISIBLE_RUN + 1].copy()
        for k in range(1, VISIBLE_RUN):
            run &= out[k: len(out) - VISIBLE_RUN + 1 + k]
        hits = np.flatnonzero(run)
    return int(start + hits[0]) if len(hits) else None
