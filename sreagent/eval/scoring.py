"""Pure scorers for labelled telemetry, exactly as ``shared/datasets/README.md`` defines them.

Every function here is a pure function of rankings, labels and alarms; none reads a file or the
clock. Formulas, conventions for empty inputs and references are in docs/evaluation-method.md.

Detection scorers work on a case's *timeline*: the sorted, unique sample instants of the case
(``numpy.datetime64`` values). Alarms are a boolean mask over that timeline and windows are
closed time intervals; :func:`window_index_spans` and :func:`alarm_mask` convert between
instants and sample indexes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
TimeArray = npt.NDArray[np.datetime64]
IndexSpan = tuple[int, int]


# --------------------------------------------------------------------------------------------
# RCA: AC@k and Avg@k
# --------------------------------------------------------------------------------------------


def _distinct(ranking: Iterable[str]) -> list[str]:
    # "The top k ranked services" are k distinct services; a ranking that names a service twice
    # must not push a third one out of the top k by repetition.
    seen: set[str] = set()
    out: list[str] = []
    for item in ranking:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def hit_at_k(ranking: Sequence[str], truth: str, k: int) -> bool:
    """Whether ``truth`` is among the first ``k`` distinct items of ``ranking``."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return truth in _distinct(ranking)[:k]


def ac_at_k(rankings: Sequence[Sequence[str]], truths: Sequence[str], k: int) -> float:
    """AC@k: the fraction of cases whose true root cause is in the top ``k`` of its ranking.

    ``rankings[i]`` is the ranked list a method produced for case ``i`` and ``truths[i]`` its
    labelled root cause (service or entity: the same function scores both levels).
    """
    if len(rankings) != len(truths):
        raise ValueError(f"{len(rankings)} rankings for {len(truths)} truths")
    if not truths:
        raise ValueError("AC@k is undefined over zero cases")
    return sum(hit_at_k(r, t, k) for r, t in zip(rankings, truths, strict=True)) / len(truths)


def avg_at_k(rankings: Sequence[Sequence[str]], truths: Sequence[str], k: int) -> float:
    """Avg@k: the mean of AC@1 .. AC@k."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return sum(ac_at_k(rankings, truths, j) for j in range(1, k + 1)) / k


def rca_metrics(
    rankings: Sequence[Sequence[str]], truths: Sequence[str], *, suffix: str = ""
) -> dict[str, float]:
    """The reported RCA figures: ``ac@1``, ``ac@3`` and ``avg@5`` (keys get ``suffix``)."""
    return {
        f"ac@1{suffix}": ac_at_k(rankings, truths, 1),
        f"ac@3{suffix}": ac_at_k(rankings, truths, 3),
        f"avg@5{suffix}": avg_at_k(rankings, truths, 5),
    }


# --------------------------------------------------------------------------------------------
# Detection: timeline helpers
# --------------------------------------------------------------------------------------------


def _as_datetime64(instant: datetime | np.datetime64) -> np.datetime64:
    if isinstance(instant, datetime):
        if instant.tzinfo is not None:
            instant = instant.astimezone(UTC).replace(tzinfo=None)
        return np.datetime64(instant, "ms")
    return instant.astype("datetime64[ms]")  # type: ignore[no-any-return]


def window_index_spans(
    timeline: TimeArray, windows: Iterable[tuple[datetime, datetime]]
) -> list[IndexSpan]:
    """Closed time windows as closed index spans ``(first, last)`` over ``timeline``.

    A window's span is the samples whose instant lies inside it; a window that holds no sample
    is left out (it cannot be scored on this timeline).
    """
    t = timeline.astype("datetime64[ms]")
    spans: list[IndexSpan] = []
    for start, end in windows:
        first = int(np.searchsorted(t, _as_datetime64(start), side="left"))
        last = int(np.searchsorted(t, _as_datetime64(end), side="right")) - 1
        if first <= last:
            spans.append((first, last))
    return spans


def label_mask(n: int, spans: Iterable[IndexSpan]) -> BoolArray:
    """A boolean mask of length ``n``: true on every sample inside a span."""
    mask = np.zeros(n, dtype=bool)
    for first, last in spans:
        mask[first : last + 1] = True
    return mask


def alarm_mask(timeline: TimeArray, alarm_times: Iterable[datetime | np.datetime64]) -> BoolArray:
    """Alarm instants as a mask over ``timeline``.

    An alarm raised between two samples belongs to the latest sample at or before it (the data
    it could have been raised on); one before the first sample is dropped.
    """
    t = timeline.astype("datetime64[ms]")
    mask = np.zeros(len(t), dtype=bool)
    for when in alarm_times:
        i = int(np.searchsorted(t, _as_datetime64(when), side="right")) - 1
        if i >= 0:
            mask[i] = True
    return mask


def runs(mask: BoolArray) -> list[IndexSpan]:
    """Maximal runs of consecutive true samples, as closed index spans."""
    m = np.asarray(mask, dtype=np.int8)
    edges = np.diff(np.concatenate(([0], m, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


# --------------------------------------------------------------------------------------------
# Detection: event-wise and point-wise counts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """True/false positive and false negative counts; add them across cases (micro average)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


@dataclass(frozen=True)
class EventCounts:
    """Event-wise counts: windows detected/missed and alarm runs true/false."""

    windows: int = 0
    detected_windows: int = 0
    alarm_runs: int = 0
    true_alarm_runs: int = 0

    def __add__(self, other: EventCounts) -> EventCounts:
        return EventCounts(
            self.windows + other.windows,
            self.detected_windows + other.detected_windows,
            self.alarm_runs + other.alarm_runs,
            self.true_alarm_runs + other.true_alarm_runs,
        )

    @property
    def precision(self) -> float:
        """True alarm runs / all alarm runs (0 when there are no alarm runs)."""
        return self.true_alarm_runs / self.alarm_runs if self.alarm_runs else 0.0

    @property
    def recall(self) -> float:
        """Detected windows / windows (0 when there are no windows)."""
        return self.detected_windows / self.windows if self.windows else 0.0

    @property
    def f1(self) -> float:
        return f1(self.precision, self.recall)


def f1(precision: float, recall: float) -> float:
    """2PR / (P + R), and 0 when both are 0."""
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def precision_recall_f1(counts: Counts) -> tuple[float, float, float]:
    """Precision, recall and F1 of point counts (each 0 when its denominator is 0)."""
    p = counts.tp / (counts.tp + counts.fp) if counts.tp + counts.fp else 0.0
    r = counts.tp / (counts.tp + counts.fn) if counts.tp + counts.fn else 0.0
    return p, r, f1(p, r)


def event_counts(alarms: BoolArray, spans: Sequence[IndexSpan]) -> EventCounts:
    """Event-wise counts for one case.

    A window is detected when at least one alarm falls inside it. Alarms are grouped into runs of
    consecutive samples; a run that overlaps any window is a true alarm run.
    """
    alarms = np.asarray(alarms, dtype=bool)
    labelled = label_mask(len(alarms), spans)
    alarm_runs = runs(alarms)
    detected = sum(bool(alarms[a : b + 1].any()) for a, b in spans)
    true_runs = sum(bool(labelled[a : b + 1].any()) for a, b in alarm_runs)
    return EventCounts(len(spans), detected, len(alarm_runs), true_runs)


def point_adjust(alarms: BoolArray, labels: BoolArray) -> BoolArray:
    """OmniAnomaly's point adjustment.

    For every maximal run of labelled samples, if any sample of the run is alarmed, every sample
    of the run counts as alarmed. Alarms outside labelled runs are kept as they are.
    """
    adjusted = np.asarray(alarms, dtype=bool).copy()
    for a, b in runs(labels):
        if adjusted[a : b + 1].any():
            adjusted[a : b + 1] = True
    return adjusted


def point_counts(alarms: BoolArray, labels: BoolArray, *, adjust: bool) -> Counts:
    """Point-wise counts for one case, with (``adjust=True``) or without point adjustment."""
    alarms = np.asarray(alarms, dtype=bool)
    labels = np.asarray(labels, dtype=bool)
    if alarms.shape != labels.shape:
        raise ValueError(f"{alarms.shape} alarms for {labels.shape} labels")
    predicted = point_adjust(alarms, labels) if adjust else alarms
    return Counts(
        tp=int(np.sum(predicted & labels)),
        fp=int(np.sum(predicted & ~labels)),
        fn=int(np.sum(~predicted & labels)),
    )


def detection_delays(
    timeline: TimeArray,
    alarms: BoolArray,
    spans: Sequence[IndexSpan],
    anchors: Sequence[datetime | np.datetime64] | None = None,
) -> list[float]:
    """Seconds from each detected window's start (or its anchor instant) to its first alarm.

    ``anchors[i]`` replaces window ``i``'s start when given (NAB's labelled anomaly instant); a
    first alarm before the anchor gives a negative delay. Windows without an alarm have no delay
    and are left out.
    """
    if anchors is not None and len(anchors) != len(spans):
        raise ValueError(f"{len(anchors)} anchors for {len(spans)} windows")
    t = timeline.astype("datetime64[ms]")
    alarms = np.asarray(alarms, dtype=bool)
    delays: list[float] = []
    for n, (a, b) in enumerate(spans):
        hits = np.flatnonzero(alarms[a : b + 1])
        if hits.size == 0:
            continue
        start = t[a] if anchors is None else _as_datetime64(anchors[n])
        delays.append(float((t[a + hits[0]] - start) / np.timedelta64(1, "ms")) / 1000.0)
    return delays


# --------------------------------------------------------------------------------------------
# NAB v1.1 scoring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NabProfile:
    """NAB's application profile: the weights of true positives, false positives, misses."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float


NAB_PROFILES: dict[str, NabProfile] = {
    "standard": NabProfile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP": NabProfile("reward_low_FP", 1.0, 0.22, 1.0),
    "reward_low_FN": NabProfile("reward_low_FN", 1.0, 0.11, 2.0),
}

#: The keys the evaluation output uses for each profile.
NAB_KEYS: dict[str, str] = {
    "standard": "nab_standard",
    "reward_low_FP": "nab_low_fp",
    "reward_low_FN": "nab_low_fn",
}


def nab_sigma(y: float) -> float:
    """NAB's scaled sigmoid sigma(y) = 2 / (1 + e^(5y)) - 1, and -1 for y > 3."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def nab_probation(n: int) -> int:
    """Length of NAB's probationary period: min(floor(0.15 n), 750) samples."""
    return min(math.floor(0.15 * n), 750)


@dataclass(frozen=True)
class NabCaseScore:
    """One series' raw NAB score with its null- and perfect-detector scores."""

    score: float
    null: float
    perfect: float

    def __add__(self, other: NabCaseScore) -> NabCaseScore:
        return NabCaseScore(
            self.score + other.score, self.null + other.null, self.perfect + other.perfect
        )


def _nab_point_weights(
    n: int, spans: Sequence[IndexSpan], profile: NabProfile
) -> tuple[FloatArray, npt.NDArray[np.int64], int]:
    """Per sample: the weighted score an alarm there earns, and its window (-1 outside).

    Mirrors NAB's ``Sweeper.calcSweepScore``: inside a window an alarm earns
    A_TP sigma(-(r - i + 1)/W) / sigma(-1); outside it costs A_FP sigma(|i - r'|/(W' - 1)) against the
    closest preceding window (any window, the probationary ones included), or -A_FP when none
    precedes it. Also returns the probationary length.
    """
    ordered = sorted(spans)
    for (_, b), (c, _) in itertools.pairwise(ordered):
        if c <= b:
            raise ValueError(f"NAB windows overlap: {ordered}")
    weights = np.empty(n, dtype=np.float64)
    window_of = np.full(n, -1, dtype=np.int64)
    max_tp = nab_sigma(-1.0)
    cursor = 0
    prev: IndexSpan | None = None
    for w, (a, b) in enumerate(ordered):
        _fill_false_positives(weights, cursor, a, prev, profile)
        width = b - a + 1
        i = np.arange(a, b + 1)
        y = -(b - i + 1) / width
        weights[a : b + 1] = profile.a_tp * (2.0 / (1.0 + np.exp(5.0 * y)) - 1.0) / max_tp
        window_of[a : b + 1] = w
        cursor = b + 1
        prev = (a, b)
    _fill_false_positives(weights, cursor, n, prev, profile)
    return weights, window_of, nab_probation(n)


def _fill_false_positives(
    weights: FloatArray, lo: int, hi: int, prev: IndexSpan | None, profile: NabProfile
) -> None:
    if lo >= hi:
        return
    if prev is None:
        weights[lo:hi] = -profile.a_fp
        return
    a, b = prev
    width = b - a + 1
    i = np.arange(lo, hi)
    # NAB divides by (W' - 1); a one-sample window would divide by zero there, so an alarm after
    # it is scored as "far behind the window" (sigma = -1), the limit of that expression.
    y = np.abs(i - b) / (width - 1) if width > 1 else np.full(hi - lo, np.inf)
    sigma = np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0)
    weights[lo:hi] = profile.a_fp * sigma


def nab_case_score(
    alarms: BoolArray, spans: Sequence[IndexSpan], profile: NabProfile
) -> NabCaseScore:
    """The raw NAB score of one series for one profile.

    ``alarms`` is the detector's alarm mask over the series, ``spans`` its labelled windows as
    index spans. Only the first alarm inside a window counts; every alarm outside all windows
    is a false positive; alarms in the probationary period count for nothing and a window lying
    wholly inside it is not scored.
    """
    alarms = np.asarray(alarms, dtype=bool)
    n = len(alarms)
    weights, window_of, probation = _nab_point_weights(n, spans, profile)
    scored = np.arange(n) >= probation
    windows_scored = {int(w) for w in np.unique(window_of[scored]) if w >= 0}
    active = alarms & scored
    score = float(np.sum(weights[active & (window_of < 0)]))
    for w in windows_scored:
        hit = np.flatnonzero(active & (window_of == w))
        score += float(weights[hit[0]]) if hit.size else -profile.a_fn
    k = len(windows_scored)
    return NabCaseScore(score=score, null=-profile.a_fn * k, perfect=profile.a_tp * k)


def nab_normalised(total: NabCaseScore) -> float:
    """100 (S - S_null) / (S_perfect - S_null) over summed case scores (0 with no windows)."""
    span = total.perfect - total.null
    return 100.0 * (total.score - total.null) / span if span else 0.0


def nab_corpus_score(
    cases: Iterable[tuple[BoolArray, Sequence[IndexSpan]]], profile: NabProfile
) -> float:
    """The normalised NAB score of a corpus of ``(alarms, spans)`` series at fixed alarms."""
    total = NabCaseScore(0.0, 0.0, 0.0)
    for alarms, spans in cases:
        total = total + nab_case_score(alarms, spans, profile)
    return nab_normalised(total)


@dataclass(frozen=True)
class NabSweepResult:
    """The corpus-wide threshold that maximises one profile's score, and that score."""

    profile: str
    threshold: float
    score: float


def nab_optimise_threshold(
    cases: Sequence[tuple[FloatArray, Sequence[IndexSpan]]], profile: NabProfile
) -> NabSweepResult:
    """NAB's threshold sweep: the one anomaly-score threshold, shared by every series, that
    maximises the corpus score of ``profile`` (alarm where score >= threshold).

    Mirrors NAB's ``Sweeper.calcScoreByThreshold``: every distinct score value is tried from the
    highest down, starting from "no alarm at all". **This uses the labels**; NAB reports its
    detectors this way, and so do we for baselines on datasets without a training part (see
    docs/evaluation-method.md).
    """
    values: list[FloatArray] = []
    weights_all: list[FloatArray] = []
    keys_all: list[npt.NDArray[np.int64]] = []
    total = NabCaseScore(0.0, 0.0, 0.0)
    window_base = 0
    window_scores: dict[int, float] = {}
    for scores, spans in cases:
        scores = np.asarray(scores, dtype=np.float64)
        n = len(scores)
        weights, window_of, probation = _nab_point_weights(n, spans, profile)
        keep = np.arange(n) >= probation
        keys = np.where(window_of >= 0, window_of + window_base, -1)[keep]
        for key in np.unique(keys[keys >= 0]):
            window_scores[int(key)] = -profile.a_fn
        values.append(scores[keep])
        weights_all.append(weights[keep])
        keys_all.append(keys)
        window_base += len(spans)
        k = len(np.unique(keys[keys >= 0]))
        total = total + NabCaseScore(0.0, -profile.a_fn * k, profile.a_tp * k)
    if not values:
        raise ValueError("NAB threshold sweep over zero series")
    v = np.concatenate(values)
    wts = np.concatenate(weights_all)
    keys = np.concatenate(keys_all)
    order = np.argsort(-v, kind="stable")
    fp_sum = 0.0
    window_sum = sum(window_scores.values())
    best_threshold, best_raw = math.inf, fp_sum + window_sum
    i = 0
    m = len(order)
    while i < m:
        threshold = v[order[i]]
        while i < m and v[order[i]] == threshold:
            j = order[i]
            key = int(keys[j])
            if key < 0:
                fp_sum += float(wts[j])
            elif wts[j] > window_scores[key]:
                window_sum += float(wts[j]) - window_scores[key]
                window_scores[key] = float(wts[j])
            i += 1
        raw = fp_sum + window_sum
        if raw > best_raw:
            best_threshold, best_raw = float(threshold), raw
    score = nab_normalised(NabCaseScore(best_raw, total.null, total.perfect))
    return NabSweepResult(profile=profile.name, threshold=best_threshold, score=score)


# --------------------------------------------------------------------------------------------
# Culprit metrics: HitRate@P%
# --------------------------------------------------------------------------------------------


def hit_rate(ranked_metrics: Sequence[str], truth: Collection[str], percent: float) -> float:
    """OmniAnomaly's HitRate@P% for one segment.

    |top floor(P x |GT|) ranked metrics & GT| / |GT|, with ``percent`` given as 100 or 150.
    """
    gt = set(truth)
    if not gt:
        raise ValueError("HitRate is undefined for an empty ground-truth metric set")
    k = math.floor(percent / 100.0 * len(gt) + 1e-9)
    return len(set(_distinct(ranked_metrics)[:k]) & gt) / len(gt)


def mean_hit_rate(
    segments: Sequence[tuple[Sequence[str], Collection[str]]], percent: float
) -> float:
    """HitRate@P% averaged over segments of ``(ranked metrics, ground-truth metrics)``."""
    if not segments:
        raise ValueError("HitRate is undefined over zero segments")
    return sum(hit_rate(r, gt, percent) for r, gt in segments) / len(segments)


Task = Literal["rca", "detection"]
