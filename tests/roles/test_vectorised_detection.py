"""The chain-cost work changes how the detectors compute, never what: the vectorised baseline
statistics against the scalar code they replaced (kept here), and the screened detection
(masks built only when the series' extreme can pass their test) against the same series
analysed with every mask built."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from sreagent.roles._detectors import (
    SeriesDetection,
    analysed_values,
    baseline_end,
    detect,
    detect_series,
)
from sreagent.roles._stats import Band, Baseline, percentiles, spreads
from sreagent.runtime import ChainConfig, EvidenceView
from sreagent.scenarios import generate, load_scenario

from . import windows
from .windows import ONSET

# --- the scalar code of session 3, verbatim --------------------------------------------------

MAD_TO_SIGMA = 1.4826


def _old_percentile(values: np.ndarray, q: float) -> float:
    n = values.shape[0]
    if n == 0:
        return 0.0
    pos = q / 100.0 * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    part = np.partition(values, (lo, hi)) if n > 1 else values
    return float(part[lo] + (part[hi] - part[lo]) * (pos - lo))


def _old_median(values: np.ndarray) -> float:
    return _old_percentile(values, 50.0)


def _old_baseline(values: np.ndarray, floor: float) -> Baseline:
    if values.shape[0] == 0:
        return Baseline(0.0, floor, 0)
    med = _old_median(values)
    mad = _old_median(np.abs(values - med)) * MAD_TO_SIGMA
    return Baseline(med, max(mad, floor), int(values.shape[0]))


def _old_band(values: np.ndarray, floor: float) -> Band:
    if values.shape[0] == 0:
        return Band(-floor, floor)
    q25, med, q75 = _old_percentile(values, 25.0), _old_median(values), \
        _old_percentile(values, 75.0)
    mad = _old_median(np.abs(values - med))
    margin = max(3.0 * MAD_TO_SIGMA * mad, 0.05 * abs(med), floor)
    return Band(q25 - margin, q75 + margin)


# --- helpers -----------------------------------------------------------------------------------


def _bits(x: float) -> bytes:
    """A float's exact bits (``==`` would call 0.0 and -0.0 equal)."""
    return struct.pack("<d", x)


def _samples(seed: int, count: int) -> list[np.ndarray]:
    """Samples of the shapes telemetry has: noise, quantised steps with many ties, signed
    zeros, constants, bursts; lengths 0 to 60 with many of one length (as a view's are)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        n = 41 if i % 3 == 0 else int(rng.integers(0, 61))
        kind = i % 6
        if kind == 0:
            v = rng.normal(0.3, 0.05, n)
        elif kind == 1:
            v = rng.integers(0, 4, n).astype(np.float64)
        elif kind == 2:
            v = np.round(rng.exponential(1.0, n), 2) * rng.choice([-1.0, 1.0, 0.0, -0.0], n)
        elif kind == 3:
            v = np.full(n, rng.normal())
        elif kind == 4:
            v = rng.lognormal(20.0, 2.0, n)  # bytes per second: large magnitudes
        else:
            v = np.where(rng.random(n) < 0.1, 5.0, 0.0) + rng.normal(0, 1e-3, n)
        out.append(v)
    return out


# --- vectorised statistics ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spreads_give_the_scalar_baselines_and_bands_bit_for_bit(seed: int) -> None:
    samples = _samples(seed, 600)
    found = spreads(samples)
    assert len(found) == len(samples)
    compared = 0
    for values, spread in zip(samples, found, strict=True):
        for floor in (1e-9, 0.01, 1.5):
            old_base, new_base = _old_baseline(values, floor), spread.baseline(floor)
            assert (_bits(new_base.median), _bits(new_base.sigma), new_base.n) == \
                (_bits(old_base.median), _bits(old_base.sigma), old_base.n), values
            old_band, new_band = _old_band(values, floor), spread.band(floor)
            assert (_bits(new_band.low), _bits(new_band.high)) == \
                (_bits(old_band.low), _bits(old_band.high)), values
            compared += 1
    assert compared == 3 * len(samples)


@pytest.mark.parametrize("q", [5.0, 25.0, 50.0, 95.0, 100.0])
def test_percentiles_give_the_scalar_percentile_bit_for_bit(q: float) -> None:
    samples = _samples(7, 400)
    found = percentiles(samples, q)
    assert [_bits(x) for x in found] == [_bits(_old_percentile(v, q)) for v in samples]


def test_spreads_keep_the_order_of_mixed_lengths() -> None:
    # Lengths interleaved: each answer must land on its own sample, not its length group's.
    samples = [np.array([1.0, 2.0, 3.0]), np.array([10.0]), np.array([]),
               np.array([4.0, 4.0, 8.0]), np.array([-1.0, 1.0])]
    medians = [s.median for s in spreads(samples)]
    assert medians == [2.0, 10.0, 0.0, 4.0, 0.0]
    assert [s.n for s in spreads(samples)] == [3, 1, 0, 3, 2]


# --- screened detection ---------------------------------------------------------------------


def _same(a: SeriesDetection, b: SeriesDetection) -> None:
    key = a.series.key
    assert a.series.key == b.series.key
    for name in ("score", "static_level", "z", "values"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), (key, name)
    if a.band_score is None or b.band_score is None:
        assert a.band_score is None and b.band_score is None, key
    else:
        assert a.band_score.tobytes() == b.band_score.tobytes(), key
    assert (a.base, a.normal, a.warn, a.detector, a.routine) == \
        (b.base, b.normal, b.warn, b.detector, b.routine), key


def _compare_every_series(view: EvidenceView) -> int:
    """Each series of ``detect`` (screened, batched statistics) against the same series
    analysed alone with every mask built (no extremes, its own spread). Returns how many
    series fired, so a caller can check its window exercised the hot paths too."""
    config = ChainConfig()
    found = detect(view, config)
    base_end = baseline_end(view, config)
    fired = 0
    for d in found.series:
        if d.rule.band in ("peer", "surge", "quota", "slowdown"):
            # Their band scores are rewritten afterwards from other series (peers, context);
            # their raw candidates are compared through a fresh call below.
            alone = detect_series(view, config, d.series, d.rule, base_end)
            screened = detect_series(view, config, d.series, d.rule, base_end,
                                     analysed_values(d.series, d.rule), None,
                                     (float(d.values.min()), float(d.values.max())))
            _same(screened, alone)
            continue
        alone = detect_series(view, config, d.series, d.rule, base_end)
        _same(d, alone)
        fired += d.fired
    return fired


def test_screened_detection_equals_full_detection_on_hand_built_windows() -> None:
    w = windows.cpu_saturation(seed=5)
    # A threshold crossing (static level 1 and 2), a falling gauge, a counter that starts.
    w.gauge("memory_used_ratio", base=0.90, noise=0.01)
    w.ramp("memory_used_ratio", start_s=ONSET, to=0.985, ramp_s=30)
    w.gauge("network_link_up", "nic/eth1", base=1.0)
    w.ramp("network_link_up", "nic/eth1", start_s=ONSET + 100, to=0.0, end_s=ONSET + 160)
    w.counter("disk_io_errors_total", "disk/nvme0n1", rate=0.0)
    w.bump_counter("disk_io_errors_total", "disk/nvme0n1", at_s=ONSET + 50, by=4.0)
    w.gauge("filesystem_used_ratio", "fs/var", base=0.40, noise=0.002)
    w.ramp("filesystem_used_ratio", "fs/var", start_s=ONSET, to=0.70, ramp_s=300)
    assert _compare_every_series(w.view()) >= 4


def test_screened_detection_equals_full_detection_with_nan_samples() -> None:
    # A NaN extreme says nothing about the other samples: every mask must be built.
    w = windows.cpu_saturation(seed=6)
    w.ramp("procs_running", start_s=ONSET + 10, to=float("nan"), end_s=ONSET + 12)
    w.ramp("memory_used_ratio", start_s=100, to=float("nan"), end_s=101)
    w.ramp("memory_used_ratio", start_s=ONSET, to=0.99, ramp_s=10)
    view = w.view()
    nan_series = view.get("procs_running")
    assert nan_series is not None and np.isnan(nan_series.values).any()
    assert _compare_every_series(view) >= 2


@pytest.mark.parametrize("scenario", ["01_cpu_saturation_runaway", "07_disk_io_saturation",
                                      "24_collective_straggler",
                                      "29_control_web_cron_backup"])
def test_screened_detection_equals_full_detection_on_library_windows(scenario: str) -> None:
    frames = generate(load_scenario(scenario)).frames
    fired = _compare_every_series(EvidenceView.from_frames(frames))
    if not scenario.startswith("29_control"):
        assert fired > 0
