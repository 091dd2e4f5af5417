"""The observer's cheaper summaries change how it computes, never what: every signal line
against the per-series code it replaced (kept here), and the one-kth row percentiles against
the scalar percentile on rows as long as a 15-minute window's, with ties, signed zeros and
NaN."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from sreagent.artifacts import ObservationSummary, SignalSummary
from sreagent.roles import observe
from sreagent.roles._stats import percentile, percentiles, spreads
from sreagent.runtime import EvidenceView
from sreagent.testing import RoleEnvironment

from . import windows


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _old_signals(view: EvidenceView) -> list[SignalSummary]:
    """Session 3's observer loop: one SignalSummary per series, numpy per series."""
    out = []
    for key in sorted(view.series):
        s = view.series[key]
        if s.values.shape[0] == 0:
            continue
        label = ",".join(f"{k}={val}" for k, val in s.labels)
        out.append(SignalSummary(
            metric=s.metric if not label else f"{s.metric}{{{label}}}", entity=s.entity,
            count=int(s.values.shape[0]),
            last=float(np.round(s.values[-1], 9)), mean=float(np.round(s.values.mean(), 9)),
            minimum=float(np.round(s.values.min(), 9)),
            maximum=float(np.round(s.values.max(), 9)),
            p95=float(round(percentile(s.values, 95.0), 9))))
    return out


@pytest.mark.parametrize("window", [windows.quiet(seed=3), windows.cpu_saturation(seed=2),
                                    windows.disk_saturation(seed=1)])
def test_signal_lines_equal_the_per_series_code(window) -> None:  # type: ignore[no-untyped-def]
    view = window.view()
    made = RoleEnvironment().run(observe, view)
    assert isinstance(made.payload, ObservationSummary)
    expected = _old_signals(view)
    assert any(s.metric.endswith("}") for s in expected)  # labelled series are in the test
    assert made.payload.signals == expected
    assert [s.model_dump_json() for s in made.payload.signals] == \
        [s.model_dump_json() for s in expected]


def _long_rows(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(60):
        n = (900, 899, 2, 1)[i % 4]
        kind = i % 5
        if kind == 0:
            v = rng.normal(0.3, 0.05, n)
        elif kind == 1:
            v = rng.integers(0, 3, n).astype(np.float64)  # long runs of ties
        elif kind == 2:
            v = rng.choice([-0.0, 0.0, 1.0], n)
        elif kind == 3:
            v = np.full(n, -0.0)
        else:
            v = rng.normal(0.0, 1.0, n)
            v[rng.random(n) < 0.1] = np.nan
        rows.append(v)
    return rows


@pytest.mark.parametrize("q", [0.0, 25.0, 50.0, 75.0, 95.0, 99.9, 100.0])
def test_row_percentiles_equal_the_scalar_percentile_on_long_rows(q: float) -> None:
    rows = _long_rows(11)
    assert [_bits(x) for x in percentiles(rows, q)] == [_bits(percentile(v, q)) for v in rows]


def test_spreads_equal_the_scalar_quartiles_on_long_rows() -> None:
    rows = [v for v in _long_rows(5) if not np.isnan(v).any()]
    for v, s in zip(rows, spreads(rows), strict=True):
        med = percentile(v, 50.0)
        assert (_bits(s.q25), _bits(s.median), _bits(s.q75)) == \
            (_bits(percentile(v, 25.0)), _bits(med), _bits(percentile(v, 75.0)))
        assert _bits(s.mad) == _bits(percentile(np.abs(v - med), 50.0))
