"""Small, pure statistics the detectors and the verifier share (numpy only)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.random import Generator

MAD_TO_SIGMA = 1.4826
"""Scale of the median absolute deviation to a normal standard deviation."""


@dataclass(frozen=True)
class Baseline:
    median: float
    sigma: float
    """Robust spread (1.4826 * MAD), floored so a flat baseline does not divide by zero."""
    n: int


def baseline(values: np.ndarray, floor: float) -> Baseline:
    """Median and robust sigma of ``values``; ``floor`` is the smallest sigma allowed."""
    if values.shape[0] == 0:
        return Baseline(0.0, floor, 0)
    med = median(values)
    mad = median(np.abs(values - med)) * MAD_TO_SIGMA
    return Baseline(med, max(mad, floor), int(values.shape[0]))


@dataclass(frozen=True)
class Spread:
    """The robust figures of one sample a baseline and a band are made of."""

    n: int
    q25: float
    median: float
    q75: float
    mad: float
    """Median absolute deviation from ``median`` (unscaled)."""

    def baseline(self, floor: float) -> Baseline:
        """The same figures as :func:`baseline` of the sample."""
        if self.n == 0:
            return Baseline(0.0, floor, 0)
        return Baseline(self.median, max(self.mad * MAD_TO_SIGMA, floor), self.n)

    def band(self, floor: float) -> Band:
        """The same band as :func:`band` of the sample."""
        if self.n == 0:
            return Band(-floor, floor)
        margin = max(3.0 * MAD_TO_SIGMA * self.mad, 0.05 * abs(self.median), floor)
        return Band(self.q25 - margin, self.q75 + margin)


_EMPTY_SPREAD = Spread(0, 0.0, 0.0, 0.0, 0.0)


def spreads(samples: Sequence[np.ndarray]) -> list[Spread]:
    """The :class:`Spread` of every sample, computed for all samples of one length at once.

    The samples of one length are the rows of one block: one ``np.partition`` along the rows
    puts the quartiles' neighbours in place for every row, and the interpolation is the same
    float arithmetic :func:`percentile` does on one sample, so every figure has the same bits
    as the scalar code (tested against it). This replaces about seven partitions per series,
    each costing more in call overhead than in work, with two per length.
    """
    out: list[Spread] = [_EMPTY_SPREAD] * len(samples)
    for n, which, block in _blocks_by_length(samples):
        q25, med, q75 = _row_percentiles(block, (25.0, 50.0, 75.0))
        (mad,) = _row_percentiles(np.abs(block - med[:, None]), (50.0,))
        for i, a, b, c, d in zip(which, q25.tolist(), med.tolist(), q75.tolist(), mad.tolist(),
                                 strict=True):
            out[i] = Spread(n, a, b, c, d)
    return out


def percentiles(samples: Sequence[np.ndarray], q: float) -> list[float]:
    """:func:`percentile` of every sample (the same bits), all samples of one length at once."""
    out = [0.0] * len(samples)
    for _, which, block in _blocks_by_length(samples):
        (found,) = _row_percentiles(block, (q,))
        for i, x in zip(which, found.tolist(), strict=True):
            out[i] = x
    return out


def _blocks_by_length(
    samples: Sequence[np.ndarray],
) -> Iterator[tuple[int, list[int], np.ndarray]]:
    """The non-empty samples grouped by length: (length, their indexes, them stacked as rows)."""
    by_length: dict[int, list[int]] = {}
    for i, sample in enumerate(samples):
        by_length.setdefault(int(sample.shape[0]), []).append(i)
    for n, which in by_length.items():
        if n:
            yield n, which, np.stack([samples[i] for i in which])


def _row_percentiles(block: np.ndarray, qs: Sequence[float]) -> list[np.ndarray]:
    """:func:`percentile` of each row of ``block`` for each of ``qs``, bit for bit.

    One single-kth partition along the rows per quantile: numpy partitions a block along an
    axis several times slower with two or more kth than with one (about 3 ms against 0.5 ms
    for 275 rows of 900), so the upper neighbour is not a second kth but the smallest value
    right of the lower one, which is the same element. ``fmin`` skips NaN as the partition
    does by putting NaN last, so even a NaN gives the bits the scalar code gives.
    """
    n = block.shape[1]
    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        if n == 1:
            low = high = block[:, 0]
        else:
            part = np.partition(block, lo, axis=1)
            low = part[:, lo]
            high = low if hi == lo else np.fmin.reduce(part[:, hi:], axis=1)
        out.append(low + (high - low) * (pos - lo))
    return out


@dataclass(frozen=True)
class Band:
    """A gauge's normal range: the baseline's interquartile range widened by a margin."""

    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


def band(values: np.ndarray, floor: float) -> Band:
    """The baseline band of ``values``: ``[q25 - m, q75 + m]``.

    ``m = max(3 x 1.4826 x MAD, 5 % of |median|, floor)``. Quartiles rather than extremes, so
    recurring bursts inside the baseline (well under a quarter of the time) neither widen the
    band nor hide a later move. The same definition as the scenario library's "visible"
    (sreagent.scenarios._stats), so a detector built on it and the ground truth agree on
    when a series left its normal range.
    """
    if values.shape[0] == 0:
        return Band(-floor, floor)
    q25, med, q75 = percentile(values, 25.0), median(values), percentile(values, 75.0)
    mad = median(np.abs(values - med))
    margin = max(3.0 * MAD_TO_SIGMA * mad, 0.05 * abs(med), floor)
    return Band(q25 - margin, q75 + margin)


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """For each index, how many consecutive true values end there (0 where false)."""
    n = mask.shape[0]
    idx = np.arange(n)
    # The index of the last false at or before i; the run is the distance to it.
    last_false = np.maximum.accumulate(np.where(mask, -1, idx))
    return np.where(mask, idx - last_false, 0)


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation), without its per-call overhead."""
    n = values.shape[0]
    if n == 0:
        return 0.0
    pos = q / 100.0 * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    part = np.partition(values, (lo, hi)) if n > 1 else values
    return float(part[lo] + (part[hi] - part[lo]) * (pos - lo))


def median(values: np.ndarray) -> float:
    return percentile(values, 50.0)


def counter_increments(values: np.ndarray) -> np.ndarray:
    """Per-sample increments of a counter, with resets handled.

    A drop means the counter restarted (a reboot, a driver reload): the increment over that
    interval is the new value itself, never a negative number. The first sample has none.
    """
    if values.shape[0] == 0:
        return values
    diff = np.diff(values, prepend=values[0])
    reset = diff < 0
    diff[reset] = values[reset]
    return diff


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges [start, end) where ``mask`` is true."""
    if mask.shape[0] == 0 or not mask.any():  # most masks are all false: skip the edges
        return []
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.diff(padded)
    starts = np.nonzero(edges == 1)[0]
    ends = np.nonzero(edges == -1)[0]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def hysteresis(hot: np.ndarray, cool: np.ndarray, open_after: int, close_after: int) -> np.ndarray:
    """The active mask of a detector with hysteresis.

    It opens at the ``open_after``-th consecutive ``hot`` sample and stays open until
    ``close_after`` consecutive ``cool`` samples (cool is a lower bar than not hot).
    """
    n = hot.shape[0]
    active = np.zeros(n, dtype=bool)
    state = False
    streak_hot = streak_cool = 0
    for i in range(n):  # n is a window of samples; this loop is cheap and obviously right
        if hot[i]:
            streak_hot += 1
        else:
            streak_hot = 0
        if cool[i]:
            streak_cool += 1
        else:
            streak_cool = 0
        if not state and streak_hot >= open_after:
            state = True
        elif state and streak_cool >= close_after:
            state = False
        active[i] = state
    return active


def first_sustained(mask: np.ndarray, length: int) -> int | None:
    """Index where ``mask`` has been true for ``length`` consecutive samples, or None."""
    for start, end in runs(mask):
        if end - start >= length:
            return start + length - 1
    return None


# --- Mann-Whitney U ------------------------------------------------------------------------


@dataclass(frozen=True)
class RankTest:
    statistic: float
    """U of the ``after`` sample."""
    p_value: float
    """One-sided: the probability of an effect at least this large in the wanted direction."""
    effect: float
    """Rank-biserial correlation in [-1, 1]; positive means ``after`` moved the wanted way."""
    method: str


def _ranks(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Average ranks (1-based) and the tie-correction term sum(t^3 - t)."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(x.shape[0], dtype=np.float64)
    boundaries = np.nonzero(np.diff(sorted_x))[0] + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [x.shape[0]]))
    tie_term = 0.0
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0
        t = e - s
        tie_term += t**3 - t
    return ranks, tie_term


def _u_after(before: np.ndarray, after: np.ndarray, want_down: bool) -> tuple[float, float]:
    both = np.concatenate((before, after))
    ranks, ties = _ranks(-both if want_down else both)
    n1 = after.shape[0]
    r_after = float(ranks[before.shape[0]:].sum())
    return r_after - n1 * (n1 + 1) / 2.0, ties


def mann_whitney(before: np.ndarray, after: np.ndarray, *, want_down: bool,
                 rng: Generator, permutations: int, exact_below: int) -> RankTest:
    """One-sided Mann-Whitney U test that ``after`` moved the wanted way from ``before``.

    Large samples use the normal approximation with tie correction and continuity
    correction; small ones a permutation test over the pooled values, drawn from the run's
    seeded generator (so the p-value is the same in every replay).
    """
    n0, n1 = before.shape[0], after.shape[0]
    u, ties = _u_after(before, after, want_down)
    effect = 2.0 * u / (n0 * n1) - 1.0
    if min(n0, n1) < exact_below:
        pooled = np.concatenate((before, after))
        hits = 0
        for _ in range(permutations):
            perm = rng.permutation(pooled)
            u_perm, _ = _u_after(perm[:n0], perm[n0:], want_down)
            if u_perm >= u:
                hits += 1
        p = (hits + 1) / (permutations + 1)
        return RankTest(u, p, effect, "mann_whitney_u_permutation")
    n = n0 + n1
    mean = n0 * n1 / 2.0
    var = n0 * n1 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return RankTest(u, 1.0, effect, "mann_whitney_u_normal")
    z = (u - mean - 0.5) / math.sqrt(var)
    p = 0.5 * math.erfc(z / math.sqrt(2.0))
    return RankTest(u, min(max(p, 0.0), 1.0), effect, "mann_whitney_u_normal")
