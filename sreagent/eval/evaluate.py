"""Scoring whole datasets: per-case method outputs in, the ``sreagent eval --json`` object out.

A method's per-case output is an :class:`RcaResult` (ranked services and entities) or a
:class:`DetectionResult` (alarm mask over the case timeline, and per culprit segment a ranked
list of metrics). :func:`summarise_rca` and :func:`summarise_detection` score a list of them;
:func:`report` assembles the JSON object with the chain's summary (when there is one) beside the
baselines'. :func:`evaluate_baselines` runs every baseline over a dataset directory.

The shape (see docs/evaluation-method.md)::

    {"dataset", "task", "cases", "metrics": {...}, "subsets": {"metric_observable": {...}},
     "by_fault_type": {...}, "baselines": {"baro": {...}, ...}, "protocol": {...}}

Keys that do not apply to a task or dataset are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sreagent.errors import BadInput
from sreagent.eval import baselines as bl
from sreagent.eval import scoring as sc
from sreagent.eval.cases import Case, Dataset, load_dataset

Task = Literal["rca", "detection"]
Progress = Callable[[str], None]

RCA_BASELINES = ("baro", "nsigma", "baro_e2e")
DETECTION_BASELINES = ("baro", "nsigma", "windowed_gaussian")


# --------------------------------------------------------------------------------------------
# RCA
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RcaResult:
    """One method's output on one rca case."""

    case: Case
    services: tuple[str, ...]
    entities: tuple[str, ...] = ()


def _rca_block(results: Sequence[RcaResult], with_entities: bool) -> dict[str, Any]:
    labels = [r.case.spec.rca for r in results]
    block: dict[str, Any] = {"cases": len(results)}
    block.update(
        sc.rca_metrics([r.services for r in results], [x.root_cause_service for x in labels])
    )
    if with_entities:
        block.update(
            sc.rca_metrics(
                [r.entities for r in results],
                [x.root_cause_entity for x in labels],
                suffix="_entity",
            )
        )
    return block


def summarise_rca(results: Sequence[RcaResult]) -> dict[str, Any]:
    """AC@1, AC@3, Avg@5 overall, for the metric-observable subset and per fault type.

    Returns ``{"metrics", "subsets", "by_fault_type"}``; every block carries its case count.
    Entity-level figures (``ac@1_entity``...) are added when the method ranks entities.
    """
    if not results:
        raise ValueError("no rca results to summarise")
    # Entity figures are reported for every block once the method ranks entities at all; a case
    # it left without an entity ranking then counts as a miss, not as absent.
    entities = any(r.entities for r in results)
    out: dict[str, Any] = {"metrics": _rca_block(results, entities)}
    observable = [r for r in results if r.case.spec.rca.metric_observable]
    if observable:
        out["subsets"] = {"metric_observable": _rca_block(observable, entities)}
    by_type: dict[str, list[RcaResult]] = {}
    for r in results:
        by_type.setdefault(r.case.spec.rca.fault_type, []).append(r)
    out["by_fault_type"] = {k: _rca_block(v, entities) for k, v in sorted(by_type.items())}
    return out


def rca_alarm_time(case: Case) -> datetime:
    """The alarm time every RCA method is handed: the case's labelled ``inject_time``.

    The one label that reaches a method (RCAEval's protocol, see docs/evaluation-method.md); the
    chain integration calls this too, so ours and the baselines get the same instant.
    """
    return case.spec.rca.inject_time


def baseline_rca(case: Case, method: str) -> RcaResult:
    """BARO or N-sigma ranking of one rca case.

    ``baro`` and ``nsigma``: the alarm time splitting normal from anomalous data is the case's
    labelled ``inject_time`` (RCAEval's protocol: RCA methods are handed the detection time);
    the chain is handed the same instant. ``baro_e2e``: BARO end to end, label-free - the alarm
    time is the first change BARO's multivariate BOCPD confirms on the ``slo/...`` signals; a
    case where it confirms none gets an empty ranking (a miss). Only pod metrics are ranked
    (nodes, SLOs and call edges are not services).
    """
    if method not in RCA_BASELINES:
        raise BadInput(f"unknown rca baseline {method!r}; known: {RCA_BASELINES}")
    frame = case.metrics()
    if method == "baro_e2e":
        alarm = bl.bocpd_alarm_time(frame, bl.is_sli_entity)
        if alarm is None:
            return RcaResult(case, (), ())
    else:
        alarm = rca_alarm_time(case)
    scaler: bl.Scaler = "standard" if method == "nsigma" else "robust"
    ranked = bl.rank_metrics(frame, alarm, scaler=scaler, entity_filter=bl.is_service_entity)
    return RcaResult(case, tuple(bl.rank_services(ranked)), tuple(bl.rank_entities(ranked)))


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionResult:
    """One method's output on one detection case.

    ``alarms`` is a mask over ``timeline`` (the case's sorted sample instants; build it from alarm
    instants with :func:`sreagent.eval.scoring.alarm_mask`). ``scores`` is the per-sample
    anomaly score the alarms were thresholded from, when the method has one (needed for NAB's
    threshold sweep). ``culprits[i]`` ranks the metrics for the case's i-th culprit segment.
    """

    case: Case
    timeline: npt.NDArray[np.datetime64]
    alarms: npt.NDArray[np.bool_]
    scores: npt.NDArray[np.float64] | None = None
    culprits: tuple[tuple[str, ...], ...] = field(default=())

    def spans(self) -> list[sc.IndexSpan]:
        """The case's labelled windows as index spans over :attr:`timeline`."""
        return sc.window_index_spans(self.timeline, self.case.spec.detection.anomaly_windows)

    @classmethod
    def from_alarm_times(
        cls,
        case: Case,
        alarm_times: Iterable[datetime],
        *,
        culprits: Sequence[Sequence[str]] = (),
    ) -> DetectionResult:
        """A result from alarm instants (what the chain's anomaly findings carry).

        The timeline is the case's own (:func:`case_timeline`); each alarm marks the latest
        sample at or before it.
        """
        timeline = case_timeline(case)
        return cls(
            case,
            timeline,
            sc.alarm_mask(timeline, alarm_times),
            culprits=tuple(tuple(c) for c in culprits),
        )


def case_timeline(case: Case) -> npt.NDArray[np.datetime64]:
    """The sorted, unique sample instants of a case's ``metrics.parquet``."""
    return _timeline(case.metrics())


def _anchors(result: DetectionResult, spans: Sequence[sc.IndexSpan]) -> list[np.datetime64] | None:
    # NAB labels the anomaly instant each window was built around; delay is measured from it when
    # every scored window holds exactly one such instant, from the window start otherwise.
    points = result.case.spec.detection.anomaly_points
    if not points:
        return None
    t = result.timeline.astype("datetime64[ms]")
    anchors: list[np.datetime64] = []
    for a, b in spans:
        inside = [p for p in points if t[a] <= sc._as_datetime64(p) <= t[b]]
        if len(inside) != 1:
            return None
        anchors.append(sc._as_datetime64(inside[0]))
    return anchors


def _detection_block(
    results: Sequence[DetectionResult], alarms: Sequence[npt.NDArray[np.bool_]]
) -> dict[str, Any]:
    events = sc.EventCounts()
    raw = sc.Counts()
    adjusted = sc.Counts()
    delays: list[float] = []
    for r, a in zip(results, alarms, strict=True):
        spans = r.spans()
        labels = sc.label_mask(len(r.timeline), spans)
        events = events + sc.event_counts(a, spans)
        raw = raw + sc.point_counts(a, labels, adjust=False)
        adjusted = adjusted + sc.point_counts(a, labels, adjust=True)
        delays += sc.detection_delays(r.timeline, a, spans, _anchors(r, spans))
    p_raw, r_raw, f_raw = sc.precision_recall_f1(raw)
    p_adj, r_adj, f_adj = sc.precision_recall_f1(adjusted)
    block: dict[str, Any] = {
        "precision": events.precision,
        "recall": events.recall,
        "f1": events.f1,
        "windows": events.windows,
        "precision_point": p_raw,
        "recall_point": r_raw,
        "f1_point": f_raw,
        "precision_point_adjusted": p_adj,
        "recall_point_adjusted": r_adj,
        "f1_point_adjusted": f_adj,
    }
    if delays:
        block["delay_mean_s"] = float(np.mean(delays))
        block["delay_median_s"] = float(np.median(delays))
    return block


def summarise_detection(
    results: Sequence[DetectionResult], *, nab_thresholds: Literal["fixed", "optimised"] = "fixed"
) -> dict[str, Any]:
    """Event-wise P/R/F1, point-wise F1 without and with point adjustment, delay, NAB scores and
    (when cases carry culprit labels) HitRate@100%/@150%, micro-averaged over the cases.

    ``nab_thresholds="fixed"`` scores the alarms as given. ``"optimised"`` applies NAB's own
    protocol: per profile, the one corpus-wide threshold on ``scores`` that maximises that
    profile's score (it uses the labels); the event and point figures are then taken at the
    standard profile's threshold. Returns ``{"metrics": {...}}``.
    """
    if not results:
        raise ValueError("no detection results to summarise")
    block: dict[str, Any] = {"cases": len(results)}
    alarms = [r.alarms for r in results]
    if nab_thresholds == "optimised":
        if any(r.scores is None for r in results):
            raise ValueError("NAB threshold optimisation needs per-sample scores")
        series = [(np.asarray(r.scores), r.spans()) for r in results]
        for name, profile in sc.NAB_PROFILES.items():
            best = sc.nab_optimise_threshold(series, profile)
            block[sc.NAB_KEYS[name]] = best.score
            block[f"{sc.NAB_KEYS[name]}_threshold"] = best.threshold
            if name == "standard":
                alarms = [np.asarray(r.scores) >= best.threshold for r in results]
    else:
        for name, profile in sc.NAB_PROFILES.items():
            block[sc.NAB_KEYS[name]] = sc.nab_corpus_score(
                [(a, r.spans()) for r, a in zip(results, alarms, strict=True)], profile
            )
    block = {**_detection_block(results, alarms), **block}
    segments: list[tuple[Sequence[str], Sequence[str]]] = []
    for r in results:
        labelled = r.case.spec.detection.culprits or ()
        if labelled and len(r.culprits) != len(labelled):
            raise ValueError(
                f"case {r.case.case_id}: {len(r.culprits)} culprit rankings "
                f"for {len(labelled)} labelled segments"
            )
        segments += [(ranked, c.metrics) for ranked, c in zip(r.culprits, labelled, strict=True)]
    if segments:
        block["hitrate@100"] = sc.mean_hit_rate(segments, 100)
        block["hitrate@150"] = sc.mean_hit_rate(segments, 150)
        block["culprit_segments"] = len(segments)
    return {"metrics": block}


def _timeline(frame: Any) -> npt.NDArray[np.datetime64]:
    return np.asarray(frame["ts"].unique().sort().to_numpy().astype("datetime64[ms]"))


@dataclass(frozen=True)
class PreparedCase:
    """A detection case's telemetry pivoted once, shared by every baseline that runs on it."""

    case: Case
    test: bl.Wide
    train: bl.Wide | None


def prepare_detection_case(case: Case) -> PreparedCase:
    """Read and pivot a detection case's test part and (when present) its training part."""
    wide = bl.to_wide(case.metrics())
    train = case.baseline()
    return PreparedCase(case, wide, None if train is None else bl.to_wide(train, wide.columns))


def baseline_detection(
    case: Case, method: str, *, prepared: PreparedCase | None = None
) -> DetectionResult:
    """Run one detection baseline on one case.

    With a training part (``baseline.parquet``): per-metric statistics are fitted on it
    (BARO: median/IQR; N-sigma: mean/std; windowed Gaussian: NAB's sliding window primed with
    it), a sample's score is its largest per-metric |z|, and the alarm threshold is the
    99.9th percentile of the scores over the training part. Culprit segments rank metrics by
    their largest |z| inside the segment. Without a training part (NAB), scores are streaming
    (windowed Gaussian; expanding N-sigma) and are thresholded later by NAB's protocol.
    ``prepared`` reuses telemetry already read for another baseline.
    """
    if method not in DETECTION_BASELINES:
        raise BadInput(f"unknown detection baseline {method!r}; known: {DETECTION_BASELINES}")
    data = prepared if prepared is not None else prepare_detection_case(case)
    wide = data.test
    timeline = wide.times
    names = [f"{e}/{m}" if e != case.case_id else m for e, m in wide.columns]
    if data.train is None:
        if method == "baro" or wide.values.shape[1] != 1:
            raise BadInput(
                f"case {case.case_id}: baseline {method!r} needs a training part "
                "(baseline.parquet) or a single series",
            )
        series = wide.values[:, 0]
        if method == "windowed_gaussian":
            scores = bl.nab_anomaly_score(bl.windowed_gaussian_z(series))
        else:
            scores = bl.expanding_nsigma_z(series)
        return DetectionResult(case, timeline, np.zeros(len(series), dtype=bool), scores)

    train_wide = data.train
    if method == "windowed_gaussian":
        both = np.vstack([train_wide.values, wide.values])
        z_all = np.column_stack([bl.windowed_gaussian_z(both[:, j]) for j in range(both.shape[1])])
        n_train = len(train_wide.times)
        z_train, z_test = z_all[:n_train], z_all[n_train:]
        burn_in = sc.nab_probation(n_train)  # the window's own warm-up is not "normal" scoring
        z_train = z_train[burn_in:]
    else:
        scaler: bl.Scaler = "robust" if method == "baro" else "standard"
        z_train = bl.scaled_deviation(train_wide.values, train_wide.values, scaler)
        z_test = bl.scaled_deviation(train_wide.values, wide.values, scaler)
    threshold = bl.training_threshold(bl.max_over_metrics(z_train))
    scores = bl.max_over_metrics(z_test)
    culprits: list[tuple[str, ...]] = []
    t = timeline.astype("datetime64[ms]")
    for c in case.spec.detection.culprits or ():
        rows = (t >= sc._as_datetime64(c.start)) & (t <= sc._as_datetime64(c.end))
        culprits.append(tuple(bl.rank_culprits(z_test, names, rows)))
    return DetectionResult(case, timeline, scores > threshold, scores, tuple(culprits))


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def _flatten(summary: dict[str, Any]) -> dict[str, Any]:
    # A baseline's entry: its overall figures, with its subsets and per-fault-type blocks beside.
    out = dict(summary["metrics"])
    for key in ("subsets", "by_fault_type"):
        if key in summary:
            out[key] = summary[key]
    return out


def report(
    dataset: Dataset,
    task: Task,
    *,
    chain: dict[str, Any] | None,
    baselines: dict[str, dict[str, Any]],
    protocol: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``--json`` object: the chain's summary at the top level, baselines beside it."""
    out: dict[str, Any] = {"dataset": dataset.name, "task": task, "cases": len(dataset)}
    if chain is not None:
        for key in ("metrics", "subsets", "by_fault_type"):
            if key in chain:
                out[key] = chain[key]
    out["baselines"] = {name: _flatten(s) for name, s in baselines.items()}
    if protocol:
        out["protocol"] = protocol
    return out


RCA_PROTOCOL = {
    "alarm_time": "labelled inject_time handed to every method (RCAEval protocol), except "
    "baro_e2e, which detects it with BARO's own multivariate BOCPD on slo/* signals",
    "ranked_entities": "pods only; services from pod names",
    "baro": "re-implementation of BARO's RobustScorer (median/IQR, max signed score)",
    "nsigma": "mean/std, max signed score (RCAEval nsigma)",
    "baro_e2e": "BARO end to end: BOCPD alarm time (first confirmed change), then RobustScorer",
}
DETECTION_PROTOCOL_TRAINING = {
    "thresholds": "99.9th percentile of each detector's scores on the training part",
    "event_metrics": "event-wise precision/recall/f1 over alarm runs and windows",
    "point_metrics": "f1_point: no point adjustment; f1_point_adjusted: OmniAnomaly point adjustment",
    "nab": "NAB v1.1 scorer on the same alarms",
    "culprits": "metrics ranked by largest |z| inside each labelled segment",
}
DETECTION_PROTOCOL_STREAMING = {
    "thresholds": "NAB protocol: per profile, the corpus-wide score threshold maximising that "
    "profile (uses labels; favours the baselines)",
    "event_metrics": "event-wise precision/recall/f1 at the standard-profile threshold",
    "point_metrics": "f1_point: no point adjustment; f1_point_adjusted: OmniAnomaly point adjustment",
}


def evaluate_baselines(
    dataset_dir: Path | str,
    task: Task,
    *,
    methods: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run every baseline over a ``sreagent-cases/1`` directory and score it.

    Returns the ``--json`` object with ``baselines`` filled and the chain's keys left out; the
    chain integration calls :func:`summarise_rca` / :func:`summarise_detection` on its own
    results and passes them to :func:`report` beside these. Raises :class:`BadInput` on a
    malformed case or a task that does not match the cases.
    """
    dataset = load_dataset(dataset_dir)
    if dataset.task != task:
        raise BadInput(
            f"dataset {dataset.name} holds {dataset.task} cases, not {task}", path=str(dataset.root)
        )
    return evaluate_dataset_baselines(dataset, task, methods=methods, progress=progress)


def evaluate_dataset_baselines(
    dataset: Dataset,
    task: Task,
    *,
    methods: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_baselines` on a loaded (possibly narrowed) dataset."""
    summaries: dict[str, dict[str, Any]] = {}
    if task == "rca":
        for method in methods or RCA_BASELINES:
            results = []
            for case in dataset:
                if progress:
                    progress(f"{method} {case.case_id}")
                results.append(baseline_rca(case, method))
            summaries[method] = summarise_rca(results)
        return report(dataset, task, chain=None, baselines=summaries, protocol=RCA_PROTOCOL)

    streaming = not any(c.has_baseline for c in dataset)
    chosen = list(methods or DETECTION_BASELINES)
    if streaming:
        chosen = [m for m in chosen if m != "baro"]  # BARO needs a normal part to scale by
    per_method: dict[str, list[DetectionResult]] = {m: [] for m in chosen}
    for case in dataset:
        prepared = prepare_detection_case(case)
        for method in chosen:
            if progress:
                progress(f"{method} {case.case_id}")
            per_method[method].append(baseline_detection(case, method, prepared=prepared))
    for method, det in per_method.items():
        summaries[method] = summarise_detection(
            det, nab_thresholds="optimised" if streaming else "fixed"
        )
    protocol = DETECTION_PROTOCOL_STREAMING if streaming else DETECTION_PROTOCOL_TRAINING
    return report(dataset, task, chain=None, baselines=summaries, protocol=protocol)
