"""Baseline methods, run on the same cases and through the same scorers as the chain.

All are pure functions over polars frames and numpy arrays; none reads the labels. Where a
method needs a threshold or a normal reference, it is fitted on the part of the data that is
not scored (the case's ``baseline.parquet`` training part, or the data before the alarm time).

- **BARO** - a *re-implementation* of the RobustScorer stage of Pham, Ha and Zhang, "BARO:
  Robust Root Cause Analysis for Microservices via Multivariate Bayesian Online Change Point
  Detection", FSE 2024: each metric is scaled by the median and inter-quartile range of its
  normal part and ranked by the largest scaled value after the alarm time. The ``rcaeval``
  package (which carries the authors' implementation) does not install and import cleanly here:
  it declares no runtime dependencies, then needs pandas, scikit-learn, requests and tqdm, and
  on Python 3.11 its ``RCAEval.e2e`` package eagerly imports its RCD method (matplotlib,
  causal-learn). The formulas follow the authors' code (``robust_scorer`` in
  phamquiluan/baro and ``baro`` in RCAEval: scikit-learn's ``RobustScaler`` with the 25-75
  quantile range, a zero range replaced by 1, score = max of the signed scaled values). Its
  first stage, multivariate BOCPD of the alarm time, is re-implemented as well
  (:func:`bocpd_alarm_time`, used by the label-free ``baro_e2e`` variant); the plain ``baro``
  ranking is handed the alarm time (see docs/evaluation-method.md).
- **N-sigma** - the same ranking with mean and standard deviation (RCAEval's ``nsigma``), and a
  detector that alarms when any metric is more than N standard deviations from its training
  mean, N fitted on the training part.
- **Windowed Gaussian** - NAB's ``windowedGaussian`` detector re-implemented from NAB's
  published code: mean and standard deviation over a sliding window of the previous 6400
  values, advanced in steps of 100, anomaly score = 1 - Q(|z|), the Gaussian tail probability.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

FloatArray = npt.NDArray[np.float64]
TimeArray = npt.NDArray[np.datetime64]

#: BARO's and RCAEval's quantile range (scikit-learn ``RobustScaler`` default).
IQR_QUANTILES = (0.25, 0.75)
#: NAB's windowed-Gaussian parameters, as published (tuned by Numenta on NAB itself).
NAB_WINDOW_SIZE = 6400
NAB_STEP_SIZE = 100
#: Fixed before looking at any result: alarm above the 99.9th percentile of a detector's scores
#: on the training part (a 0.1 % false-alarm rate on training data), for every detector and
#: every dataset that has a training part.
TRAINING_QUANTILE = 0.999


# --------------------------------------------------------------------------------------------
# Long -> wide
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wide:
    """A wide matrix: one row per sample instant, one column per (entity, metric), NaN = absent."""

    times: TimeArray
    columns: tuple[tuple[str, str], ...]
    values: FloatArray

    def select(self, keep: Sequence[bool]) -> Wide:
        mask = np.asarray(keep, dtype=bool)
        cols = tuple(c for c, k in zip(self.columns, mask, strict=True) if k)
        return Wide(self.times, cols, self.values[:, mask])

    def rows(self, keep: npt.NDArray[np.bool_]) -> Wide:
        return Wide(self.times[keep], self.columns, self.values[keep])


def to_wide(frame: pl.DataFrame, columns: Sequence[tuple[str, str]] | None = None) -> Wide:
    """Pivot a long ``ts, entity, metric, value`` frame into a :class:`Wide` matrix.

    ``columns`` fixes the column order (pairs absent from ``frame`` become all-NaN columns, pairs
    not listed are dropped), so a training and a test matrix line up.
    """
    times = frame["ts"].unique().sort().to_numpy().astype("datetime64[ms]")
    if columns is None:
        pairs = frame.select("entity", "metric").unique().sort("entity", "metric")
        columns = list(zip(pairs["entity"].to_list(), pairs["metric"].to_list(), strict=True))
    index = pl.DataFrame(
        {
            "entity": [c[0] for c in columns],
            "metric": [c[1] for c in columns],
            "_col": np.arange(len(columns), dtype=np.int64),
        },
        schema={"entity": pl.String, "metric": pl.String, "_col": pl.Int64},
    )
    joined = frame.join(index, on=["entity", "metric"], how="inner")
    rows = np.searchsorted(times, joined["ts"].to_numpy().astype("datetime64[ms]"))
    values = np.full((len(times), len(columns)), np.nan)
    values[rows, joined["_col"].to_numpy()] = joined["value"].to_numpy()
    return Wide(times, tuple(columns), values)


# --------------------------------------------------------------------------------------------
# Per-metric scalers (fitted on a normal part only)
# --------------------------------------------------------------------------------------------

Scaler = Literal["robust", "standard"]


@dataclass(frozen=True)
class Fit:
    """Per-column centre and scale fitted on a normal part."""

    centre: FloatArray
    scale: FloatArray

    def z(self, values: FloatArray) -> FloatArray:
        return (values - self.centre) / self.scale


def fit_scaler(normal: FloatArray, kind: Scaler) -> Fit:
    """Fit per-column centre/scale on ``normal`` (rows = samples), ignoring NaN.

    ``robust``: median and inter-quartile range (BARO). ``standard``: mean and population
    standard deviation (N-sigma). As in scikit-learn's scalers, a zero scale (below 10 machine
    epsilons) becomes 1; a
    column without any normal sample gets NaN (and scores NaN).
    """
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        if kind == "robust":
            q1, median, q3 = np.nanquantile(
                normal, [IQR_QUANTILES[0], 0.5, IQR_QUANTILES[1]], axis=0
            )
            centre, scale = median, q3 - q1
        else:
            centre, scale = np.nanmean(normal, axis=0), np.nanstd(normal, axis=0)
    # scikit-learn's rule (``_handle_zeros_in_scale``): a scale below 10 machine epsilons is
    # float noise around zero (Nezha's latency percentiles have IQRs of 1e-17) and becomes 1.
    scale = np.where(scale < 10 * np.finfo(np.float64).eps, 1.0, scale)
    return Fit(np.asarray(centre, dtype=np.float64), np.asarray(scale, dtype=np.float64))


@contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    # All-NaN columns (a metric absent on one side) are expected; they yield NaN, not noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _nanmax(values: FloatArray, axis: int) -> FloatArray:
    with _quiet_nan_warnings():
        return np.asarray(np.nanmax(values, axis=axis), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# RCA ranking (BARO, N-sigma)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankedMetric:
    """One metric of one entity and the score that ranked it."""

    entity: str
    metric: str
    score: float


_POD = re.compile(r"^(?P<service>.+?)-[a-z0-9]{6,10}-[a-z0-9]{5}$")
_STATEFUL_POD = re.compile(r"^(?P<service>.+)-\d+$")
_NOT_A_SERVICE = ("node/", "slo/", "edge/")


def pod_service(entity: str) -> str | None:
    """The Kubernetes service of a pod entity, or ``None`` for nodes, SLOs and call edges.

    ``frontend-579b9bff58-t2dbm`` -> ``frontend`` (Deployment pod: ReplicaSet hash and pod
    suffix dropped); ``redis-0`` -> ``redis`` (StatefulSet pod); any other name is its own
    service.
    """
    if entity.startswith(_NOT_A_SERVICE):
        return None
    for pattern in (_POD, _STATEFUL_POD):
        match = pattern.match(entity)
        if match:
            return match.group("service")
    return entity


def rank_metrics(
    frame: pl.DataFrame,
    alarm_time: datetime,
    *,
    scaler: Scaler = "robust",
    entity_filter: Callable[[str], bool] | None = None,
) -> list[RankedMetric]:
    """Rank every (entity, metric) of a case by how far it moved after ``alarm_time``.

    Samples before ``alarm_time`` are the normal part, the rest the anomalous part. Each metric
    is scaled by centre/scale fitted on its normal part (``robust``: BARO; ``standard``:
    N-sigma) and scored by its largest scaled value in the anomalous part (signed, as BARO
    does: a metric that rises scores, one that falls does not). Metrics without samples on both
    sides are left out; ties are broken by entity then metric name.
    """
    if entity_filter is not None:
        frame = _filter_entities(frame, entity_filter)
    if frame.is_empty():
        return []
    wide = to_wide(frame)
    cut = np.datetime64(alarm_time.astimezone(UTC).replace(tzinfo=None), "ms")
    before = wide.times < cut
    fit = fit_scaler(wide.values[before], scaler)
    scores = (
        _nanmax(fit.z(wide.values[~before]), axis=0)
        if (~before).any()
        else np.full(len(wide.columns), np.nan)
    )
    ranked = [
        RankedMetric(entity, metric, float(score))
        for (entity, metric), score in zip(wide.columns, scores, strict=True)
        if math.isfinite(score)
    ]
    ranked.sort(key=lambda r: (-r.score, r.entity, r.metric))
    return ranked


def _filter_entities(frame: pl.DataFrame, keep: Callable[[str], bool]) -> pl.DataFrame:
    # The predicate runs once per distinct entity, not once per row.
    chosen = [e for e in frame["entity"].unique().to_list() if keep(e)]
    return frame.filter(pl.col("entity").is_in(chosen))


def rank_services(
    ranked: Sequence[RankedMetric], service_of: Callable[[str], str | None] = pod_service
) -> list[str]:
    """Services in the order their best metric ranks (RCAEval's metric -> service mapping)."""
    out: list[str] = []
    for r in ranked:
        service = service_of(r.entity)
        if service is not None and service not in out:
            out.append(service)
    return out


def rank_entities(ranked: Sequence[RankedMetric]) -> list[str]:
    """Entities in the order their best metric ranks."""
    out: list[str] = []
    for r in ranked:
        if r.entity not in out:
            out.append(r.entity)
    return out


def is_service_entity(entity: str) -> bool:
    """Whether an entity can be a root-cause service (a pod, not a node, SLO or call edge)."""
    return pod_service(entity) is not None


# --------------------------------------------------------------------------------------------
# Detection scores
# --------------------------------------------------------------------------------------------


def scaled_deviation(train: FloatArray, test: FloatArray, scaler: Scaler) -> FloatArray:
    """|z| of every test value against per-column centre/scale fitted on ``train``."""
    fit = fit_scaler(train, scaler)
    return np.abs(fit.z(test))


def max_over_metrics(z: FloatArray) -> FloatArray:
    """A sample's score: its largest per-metric score (NaN-safe; all-NaN rows score 0)."""
    out = _nanmax(z, axis=1)
    return np.where(np.isnan(out), 0.0, out)


def windowed_gaussian_z(
    values: FloatArray, window: int = NAB_WINDOW_SIZE, step: int = NAB_STEP_SIZE
) -> FloatArray:
    """|z| of each value against NAB's windowed-Gaussian statistics, before the value is added.

    Until the window is full, the statistics are the mean and population standard deviation of
    all previous values; afterwards the window holds ``window`` values and slides forward by
    ``step`` values at a time (NAB's ``stepBuffer``). A zero standard deviation becomes 1e-6 as
    in NAB; the first value has no statistics and scores 0.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    z = np.zeros(n)
    if n < 2:
        return z
    shift = x[0]  # variance is shift-invariant; centring keeps the running sums well conditioned
    c1 = np.concatenate(([0.0], np.cumsum(x - shift)))
    c2 = np.concatenate(([0.0], np.cumsum((x - shift) ** 2)))
    i = np.arange(1, n)
    # Window [lo, hi) used to score value i.
    lo = np.where(i < window, 0, ((i - window) // step) * step)
    hi = np.where(i < window, i, lo + window)
    count = hi - lo
    mean = (c1[hi] - c1[lo]) / count
    var = np.maximum((c2[hi] - c2[lo]) / count - mean**2, 0.0)
    std = np.sqrt(var)
    std = np.where(std == 0.0, 1e-6, std)
    z[1:] = np.abs((x[1:] - shift) - mean) / std
    return z


def nab_anomaly_score(z: FloatArray) -> FloatArray:
    """NAB's windowed-Gaussian anomaly score 1 - Q(|z|), with Q the Gaussian tail probability.

    The first value (no statistics yet) scores 0, as in NAB.
    """
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    score = 1.0 - 0.5 * erfc(np.abs(z) / math.sqrt(2.0))
    score[0] = 0.0
    return np.asarray(score, dtype=np.float64)


def expanding_nsigma_z(values: FloatArray) -> FloatArray:
    """|z| of each value against the mean and sample standard deviation of all earlier values.

    The streaming N-sigma of BARO's code, for series without a training part (NAB). The first
    two values score 0; a zero standard deviation becomes 1e-6.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    z = np.zeros(n)
    if n < 3:
        return z
    shift = x[0]
    c1 = np.cumsum(x - shift)
    c2 = np.cumsum((x - shift) ** 2)
    i = np.arange(2, n)  # score value i against x[0:i]
    mean = c1[i - 1] / i
    var = np.maximum((c2[i - 1] - i * mean**2) / (i - 1), 0.0)
    std = np.where(var == 0.0, 1e-6, np.sqrt(var))
    z[2:] = np.abs((x[2:] - shift) - mean) / std
    return z


def training_threshold(train_scores: FloatArray, quantile: float = TRAINING_QUANTILE) -> float:
    """The alarm threshold: the ``quantile`` of a detector's finite scores on the training part."""
    finite = train_scores[np.isfinite(train_scores)]
    if finite.size == 0:
        raise ValueError("no finite training scores to fit a threshold on")
    return float(np.quantile(finite, quantile))


# --------------------------------------------------------------------------------------------
# Culprit-metric ranking
# --------------------------------------------------------------------------------------------


def rank_culprits(
    z: FloatArray, metric_names: Sequence[str], rows: npt.NDArray[np.bool_]
) -> list[str]:
    """Metrics ranked by their largest |z| over the rows of one segment (ties by name).

    Two-sided (a metric that drops counts as much as one that rises), unlike BARO's RCA
    ranking: the culprit labels of SMD/ASD name metrics that moved either way.
    """
    seg = _nanmax(z[rows], axis=0) if rows.any() else np.full(len(metric_names), np.nan)
    seg = np.where(np.isnan(seg), -np.inf, seg)
    order = sorted(range(len(metric_names)), key=lambda j: (-seg[j], metric_names[j]))
    return [metric_names[j] for j in order]


# --------------------------------------------------------------------------------------------
# BARO's first stage: multivariate Bayesian online change point detection (re-implementation)
# --------------------------------------------------------------------------------------------

#: BARO's constants: constant hazard 1/50, a change confirmed once its run reaches 10 samples
#: with posterior probability above 0.01 (``bocpd`` / ``find_anomalies`` in phamquiluan/baro).
BOCPD_HAZARD_LAMBDA = 50
BOCPD_CONFIRM_RUN = 10
BOCPD_THRESHOLD = 0.01


def _multivariate_t_logpdf(
    x: FloatArray, mu: FloatArray, shape: FloatArray, df: FloatArray
) -> FloatArray:
    """log density of ``x`` under one multivariate Student t per run length (stacked)."""
    d = x.shape[0]
    diff = x[None, :] - mu
    sign, logdet = np.linalg.slogdet(shape)
    solved = np.linalg.solve(shape, diff[:, :, None])[:, :, 0]
    maha = np.einsum("ij,ij->i", diff, solved)
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    out = (
        lgamma((df + d) / 2.0)
        - lgamma(df / 2.0)
        - 0.5 * d * np.log(df * math.pi)
        - 0.5 * logdet
        - 0.5 * (df + d) * np.log1p(maha / df)
    )
    return np.asarray(np.where(sign > 0, out, -np.inf), dtype=np.float64)


def bocpd_run_length_posterior(
    data: FloatArray, hazard_lambda: int = BOCPD_HAZARD_LAMBDA
) -> FloatArray:
    """Adams & MacKay's online change point detection with a multivariate Student-t predictive.

    The model of BARO's ``_bocpd.py`` (after hildensia/bayesian_changepoint_detection):
    Normal-inverse-Wishart prior with dof = d + 1, kappa = 1, mu = 0, scale = identity;
    constant hazard 1/``hazard_lambda``. Returns R, where ``R[r, t]`` is the probability that
    after ``t`` samples the current run is ``r`` samples long. Computed in log space.
    """
    x = np.asarray(data, dtype=np.float64)
    n, d = x.shape
    hazard = 1.0 / hazard_lambda
    log_r = np.full((n + 1, n + 1), -np.inf)
    log_r[0, 0] = 0.0
    dof = np.array([d + 1.0])
    kappa = np.array([1.0])
    mu = np.zeros((1, d))
    scale = np.eye(d)[None, :, :]
    for t in range(n):
        df = dof - d + 1.0
        shape = scale * ((kappa + 1.0) / (kappa * df))[:, None, None]
        log_pred = _multivariate_t_logpdf(x[t], mu, shape, df)
        prior = log_r[: t + 1, t]
        growth = prior + log_pred + math.log(1.0 - hazard)
        change = np.logaddexp.reduce(prior + log_pred + math.log(hazard))
        column = np.concatenate(([change], growth))
        log_r[: t + 2, t + 1] = column - np.logaddexp.reduce(column)
        # Posterior parameters for every run length, the new run (prior) first.
        centred = x[t][None, :] - mu
        outer = centred[:, :, None] * centred[:, None, :]
        updated = np.linalg.inv(
            np.linalg.inv(scale) + (kappa / (kappa + 1.0))[:, None, None] * outer
        )
        scale = np.concatenate([np.eye(d)[None, :, :], updated])
        mu = np.concatenate(
            [np.zeros((1, d)), (kappa[:, None] * mu + x[t][None, :]) / (kappa + 1.0)[:, None]]
        )
        dof = np.concatenate([[d + 1.0], dof + 1.0])
        kappa = np.concatenate([[1.0], kappa + 1.0])
    return np.exp(log_r)


def bocpd_alarm_index(data: FloatArray) -> int | None:
    """BARO's anomaly time: the first sample where a change is confirmed, or ``None``.

    Columns are min-max scaled (a constant column becomes 0) and gaps forward-filled then
    zero-filled, as BARO does; a change at sample ``i`` is confirmed when the posterior of a
    run of ``BOCPD_CONFIRM_RUN`` samples, ``BOCPD_CONFIRM_RUN`` samples later, exceeds
    ``BOCPD_THRESHOLD``. When nothing is confirmed BARO falls back to the sample (after the
    first 5) where that posterior peaks; with fewer than ``BOCPD_CONFIRM_RUN + 2`` samples
    there is nothing to confirm and ``None`` is returned.
    """
    x = np.asarray(data, dtype=np.float64).copy()
    n = x.shape[0]
    if n < BOCPD_CONFIRM_RUN + 2 or x.shape[1] == 0:
        return None
    for j in range(x.shape[1]):
        col = x[:, j]
        valid = ~np.isnan(col)
        if valid.any():
            lo, hi = col[valid].min(), col[valid].max()
            col = (col - lo) / (hi - lo) if hi > lo else np.where(valid, 0.0, np.nan)
        idx = np.where(~np.isnan(col), np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        filled = col[idx]
        x[:, j] = np.where(np.isnan(filled), 0.0, filled)
    r = bocpd_run_length_posterior(x)
    confirmed = r[BOCPD_CONFIRM_RUN, BOCPD_CONFIRM_RUN:-1]
    hits = np.flatnonzero(confirmed > BOCPD_THRESHOLD)
    # BARO's loop starts at 1: the posterior at index 0 is never an anomaly.
    hits = hits[hits >= 1]
    if hits.size:
        return int(hits[0])
    head = 5
    return int(np.argmax(confirmed[head:]) + head) if confirmed.size > head else None


def bocpd_alarm_time(frame: pl.DataFrame, sli: Callable[[str], bool]) -> datetime | None:
    """BARO's detected anomaly time of a case from its SLI entities (e.g. ``slo/...``)."""
    selected = _filter_entities(frame, sli)
    if selected.is_empty():
        return None
    wide = to_wide(selected)
    index = bocpd_alarm_index(wide.values)
    if index is None:
        return None
    ms = wide.times[index].astype("datetime64[ms]").astype(np.int64)
    return datetime.fromtimestamp(int(ms) / 1000.0, tz=UTC)


def is_sli_entity(entity: str) -> bool:
    """Service-level signals BARO watches for its anomaly time: the ``slo/...`` entities."""
    return entity.startswith("slo/")
