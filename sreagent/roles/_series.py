"""The generic series path: detection and root-cause ranking for imported labelled telemetry.

The analyzer's detectors (sreagent.roles._detectors) know the collector's host metrics:
``cpu_utilisation_ratio``, ``disk_await_seconds``... Telemetry imported from public datasets
(``sreagent import``, ``sreagent eval``) has none of them: Kubernetes pods and services with
``cpu_usage_millicores`` or ``server_latency_p90_seconds``, call edges ``edge/A->B``, anonymous
server metrics ``m01``..``m38``, single series ``value``, at minute resolution. This module
analyses such a window series by series, with nothing but the data and the chain
configuration:

* **Baseline.** Every series gets a robust baseline (median and inter-quartile range) from
  the leading part of the window, up to the analyzer's own ``baseline_end`` (the chain
  configuration's ``detection.baseline_seconds`` / ``baseline_fraction``). An evaluation sets
  that split to the dataset's fault-free or training part, or to the alarm time of an RCA case
  (docs/evaluation-method.md); nothing here reads a label.
* **Trend and calibration.** When the analysed part is longer than :data:`ROLLING_SAMPLES`,
  each analysed sample is compared with the trailing samples before it instead. With a
  training part of at least :data:`MIN_CALIBRATION_SAMPLES` samples, each series' z is
  rescaled so that its own 99.9th percentile there sits at ``detection.z_open``.
* **Detection.** A sample's anomaly score is its largest |z| over the series. It is hot
  above ``detection.z_open`` and, with such a training part, above the 99.9th percentile of
  the training part's own scores; alarm runs need ``detection.open_samples`` hot samples, and
  runs closer than ``detection.close_samples`` are one incident. Every run is a finding; the
  incident is the first run after the baseline.
* **External alerts.** An ``alert`` event in the analysed part (:mod:`sreagent.roles._external`:
  Alertmanager's, or the alarm time an RCA protocol hands over) opens the incident at its
  instant even when no series crossed ``z_open``; the alarm runs stay as they were. The
  incident's evidence onset is then the first alarm run that overlaps the alert or starts
  within ``detection.close_samples`` after it, else the alert's own sample.
* **Ranking.** Entities are ranked over the first :data:`SCORE_SAMPLES` samples from the
  incident's (evidence) onset, by features written into the hypothesis: ``cpu`` (the entity's own CPU
  usage rising), ``latency`` (its own serving latency rising), ``network`` (callers see it
  slower than it sees itself: ``edge/A->B`` client latency rising more than server latency,
  which blames B), each ``log1p`` of a robust z so that one huge z does not drown the rest.
  Client-side latency and traffic are left out on purpose: they move in every caller of a
  slow service, so they point upstream of the cause. An entity with none of these named
  signals (anonymous metrics) is ranked by ``deviation``, its largest |z|. Every metric's z
  is a feature too (``z:<metric>``), which ranks culprit metrics.

The path is taken only for imported telemetry (the view's capability report names an
``import:`` source) in which no series has a host-detector rule, so collector telemetry and
the scenario library never reach it. Pure: numpy over the view, no clock, I/O or randomness.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from sreagent.artifacts import (
    AnomalyFinding,
    Artifact,
    ArtifactKind,
    ArtifactStatus,
    EvidenceRef,
    Finding,
    Hypothesis,
    IncidentState,
    RootCauseHypothesis,
    make_artifact,
)
from sreagent.canonical import canonical_digest
from sreagent.roles._detectors import baseline_end, rule_for
from sreagent.roles._external import ALERT_DETECTOR, ExternalAlert, external_alerts
from sreagent.roles._stats import percentile, runs
from sreagent.runtime._context import RoleContext
from sreagent.runtime._view import EvidenceView, Series

IMPORT_SOURCE_PREFIX = "import:"
"""Capability source of imported batches (sreagent.importers)."""
FAULT_CLASS = "series_deviation"
"""The fault class of a series-path hypothesis: not in the host catalogue, so the planner
proposes no action for it (an imported window has no host to act on)."""
SCORE_SAMPLES = 3
"""Samples from the incident's onset the ranking looks at: the first response to a fault,
before it propagates to callers and before a neighbouring fault (Nezha injects every 6-10
minutes at minute resolution) starts."""
MIN_BASELINE_SAMPLES = 3
"""A series with fewer baseline samples gets no baseline and is left out."""
RELATIVE_SCALE_FLOOR = 0.05
"""The robust scale is at least this share of the baseline median: a flat baseline must not
turn a small wiggle into an enormous z."""
ABSOLUTE_SCALE_FLOOR = 1e-6
ROLLING_SAMPLES = 750
"""Trailing samples an analysed sample is compared with (NAB's longest probationary period,
and at most the baseline's own length), when the analysed part is longer than that."""
CALIBRATION_PERCENTILE = 99.9
"""With a long baseline (a training part), a sample is hot only above this percentile of the
baseline's own per-sample scores too: a training part that swings to |z| 20 is not anomalous
at 20 (the same rule the detection baselines' thresholds follow)."""
MIN_CALIBRATION_SAMPLES = 1000
"""The 99.9th percentile means something from 1000 samples on; a shorter baseline (an RCA
pre-window, NAB's probationary period) keeps the chain's ``detection.z_open``."""
MAX_FINDINGS = 5000
"""Alarm runs listed in the anomaly finding (a month of minute data stays well under it)."""
ALERT_RISK = {"critical": "high", "error": "medium", "warning": "medium", "info": "low"}
"""Risk level of a window whose only incident evidence is an external alert, by its severity."""
NOT_BLAMED = ("slo/",)
"""Entity prefixes that are symptoms (service-level objectives), never a root cause."""

_CPU = re.compile(r"^cpu_usage_")
_SERVER_LATENCY = re.compile(r"^server_latency_p(9\d)_seconds$")
_EDGE = re.compile(r"^edge/(?P<src>.+)->(?P<dst>.+)$")
_POD = re.compile(r"^(?P<service>.+?)-[a-z0-9]{6,10}-[a-z0-9]{5}$")
_STATEFUL_POD = re.compile(r"^(?P<service>.+)-\d+$")


def applies(view: EvidenceView) -> bool:
    """Whether this window is imported telemetry the host detectors cannot read."""
    imported = any(source.startswith(IMPORT_SOURCE_PREFIX) for source in view.source_modes)
    return imported and bool(view.series) and all(
        rule_for(series) is None for series in view.series.values()
    )


def service_of(entity: str) -> str:
    """A pod's service (``frontend-579b9bff58-t2dbm`` -> ``frontend``); other names as they are."""
    for pattern in (_POD, _STATEFUL_POD):
        match = pattern.match(entity)
        if match:
            return match.group("service")
    return entity


@dataclass(frozen=True)
class SeriesScore:
    """One series against its baseline."""

    series: Series
    median: float
    scale: float
    z: np.ndarray
    """Signed, calibrated robust z of every sample of the series."""
    calibration: float
    """What the raw z was divided by (1, or the baseline's own 99.9th |z| percentile over
    ``z_open``)."""

    @property
    def name(self) -> str:
        return self.series.metric


@dataclass(frozen=True)
class SeriesAnalysis:
    """Everything the series path concluded about one window."""

    base_end_ns: int
    grid: np.ndarray
    scores: tuple[SeriesScore, ...]
    sample_score: np.ndarray
    """Largest |z| over all series, per grid sample (0 inside the baseline part)."""
    threshold: float
    alarm_runs: tuple[tuple[int, int], ...]
    """Half-open grid index ranges of the alarm runs, in time order."""
    alert: ExternalAlert | None = None
    """The first external alert in the analysed part, which opens the incident."""
    alert_index: int | None = None
    """The grid index of the alert's sample (the first analysed sample at or after it)."""


def _robust(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and floored IQR scale along the last axis."""
    q1, med, q3 = np.percentile(values, [25.0, 50.0, 75.0], axis=-1)
    scale = np.maximum(np.maximum(q3 - q1, RELATIVE_SCALE_FLOOR * np.abs(med)),
                       ABSOLUTE_SCALE_FLOOR)
    return med, scale


def _fit(series: Series, base_end_ns: int, z_open: float) -> SeriesScore | None:
    in_base = series.ts <= base_end_ns
    base = series.values[in_base]
    n_base = base.shape[0]
    if n_base < MIN_BASELINE_SAMPLES or not (~in_base).any():
        return None
    med, scale = (float(x) for x in _robust(base))
    z = (series.values - med) / scale
    first = int(np.argmax(~in_base))
    if series.values.shape[0] - first > ROLLING_SAMPLES:
        # Trend awareness, for an analysed part longer than the trailing window (months of a
        # single series after a short calibration period): each analysed sample against the
        # trailing samples before it, so a slow drift or a level the series settled on long
        # ago is the norm rather than an alarm that never ends.
        width = min(n_base, ROLLING_SAMPLES)
        windows = np.lib.stride_tricks.sliding_window_view(series.values[:-1], width)
        roll_med, roll_scale = _robust(windows[first - width:])
        z[first:] = (series.values[first:] - roll_med) / roll_scale
    calibration = 1.0
    if n_base >= MIN_CALIBRATION_SAMPLES:
        # A long training part says how far this series swings when nothing is wrong: z is
        # rescaled so that its 99.9th percentile there sits at z_open (a metric that idles
        # at a constant and twitches now and then must not alarm at every twitch).
        calibration = max(1.0, percentile(np.abs(z[in_base]), CALIBRATION_PERCENTILE) / z_open)
    return SeriesScore(series, med, scale, z / calibration, calibration)


def find_alarm_runs(hot: np.ndarray, persist: int,
                    join: int | None = None) -> tuple[tuple[int, int], ...]:
    """Runs of at least ``persist`` hot samples, joined across gaps shorter than ``join``
    (default ``persist``).

    A run spans its first to its last hot sample: the samples it took to count as persistent
    belong to it, the cool samples after it do not. Joined runs are one incident: it closes
    only after ``join`` cool samples, as the host analyzer's does after ``close_samples``.
    """
    join = persist if join is None else join
    merged: list[tuple[int, int]] = []
    for start, stop in runs(hot):
        if stop - start < persist:
            continue
        if merged and start - merged[-1][1] < join:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return tuple(merged)


def analyse(view: EvidenceView, ctx: RoleContext) -> SeriesAnalysis:
    """Baselines, per-sample scores and alarm runs of the window (memoised on the view)."""
    key = ("series_path", ctx.config.digest())
    found = view.memo.get(key)
    if isinstance(found, SeriesAnalysis):
        return found
    cfg = ctx.config.detection
    base_end = baseline_end(view, ctx.config)
    grid = view.grid
    fitted = [s for s in (_fit(view.series[k], base_end, cfg.z_open)
                         for k in sorted(view.series)) if s]
    sample_score = np.zeros(grid.shape[0])
    for s in fitted:
        idx = np.searchsorted(grid, s.series.ts)
        np.maximum.at(sample_score, idx, np.abs(s.z))
    analysed = grid > base_end
    base_scores = sample_score[~analysed]
    threshold = cfg.z_open
    if base_scores.shape[0] >= MIN_CALIBRATION_SAMPLES:
        threshold = max(threshold, percentile(base_scores, CALIBRATION_PERCENTILE))
    hot = analysed & (sample_score > threshold)
    alert, alert_index = None, None
    first_analysed = int(np.searchsorted(grid, base_end, side="right"))
    for candidate in external_alerts(view, not_before_ns=base_end):
        index = max(int(np.searchsorted(grid, candidate.ts_ns, side="left")), first_analysed)
        if index < grid.shape[0]:
            alert, alert_index = candidate, index
            break
    result = SeriesAnalysis(base_end, grid, tuple(fitted), sample_score, threshold,
                            find_alarm_runs(hot, cfg.open_samples, cfg.close_samples),
                            alert, alert_index)
    view.memo[key] = result
    return result


def incident_onset(analysis: SeriesAnalysis, close_samples: int) -> int | None:
    """The grid index the incident's evidence starts at, or None when no incident opened.

    Without an alert: the first alarm run's start. With one: the first alarm run that overlaps
    the alert or starts within ``close_samples`` after it (the run the alert's incident would
    still be open for), else the alert's own sample, where the alert says the trouble began.
    """
    if analysis.alert_index is None:
        return analysis.alarm_runs[0][0] if analysis.alarm_runs else None
    for start, stop in analysis.alarm_runs:
        if stop > analysis.alert_index:
            if start - analysis.alert_index <= close_samples:
                return start
            break
    return analysis.alert_index


def _top_at(analysis: SeriesAnalysis, start: int, stop: int) -> tuple[SeriesScore, int] | None:
    """The series with the largest |z| inside grid[start:stop], and that sample's grid index."""
    t0, t1 = int(analysis.grid[start]), int(analysis.grid[stop - 1])
    best: tuple[float, str, SeriesScore, int] | None = None
    for s in analysis.scores:
        inside = np.nonzero((s.series.ts >= t0) & (s.series.ts <= t1))[0]
        if inside.shape[0] == 0:
            continue
        i = int(inside[np.argmax(np.abs(s.z[inside]))])
        peak = float(abs(s.z[i]))
        label = f"{s.series.entity}/{s.series.metric}"
        if best is None or peak > best[0] or (peak == best[0] and label < best[1]):
            best = (peak, label, s, i)
    return None if best is None else (best[2], best[3])


def _r(x: float) -> float:
    return float(round(x, 6))


def detect(observation: Artifact, view: EvidenceView, ctx: RoleContext,
           prior: Artifact | None = None) -> Artifact:
    """anomaly_finding of an imported window: one finding per alarm run, the first opens the
    incident. ``prior`` is not used: an imported window stands alone."""
    analysis = analyse(view, ctx)
    findings: list[Finding] = []
    refs: list[EvidenceRef] = []
    for start, stop in analysis.alarm_runs[:MAX_FINDINGS]:
        top = _top_at(analysis, start, stop)
        if top is None:
            continue
        s, i = top
        t0, t1 = int(analysis.grid[start]), int(analysis.grid[stop - 1])
        peak = float(analysis.sample_score[start:stop].max())
        findings.append(Finding(
            detector="series_zscore", metric=s.series.metric, entity=s.series.entity,
            onset_ns=t0, severity="critical" if peak >= 4 * analysis.threshold else "error",
            score=_r(peak), value=_r(float(s.series.values[i])), baseline=_r(s.median),
            threshold=_r(analysis.threshold), direction="up" if s.z[i] >= 0 else "down"))
        refs.append(EvidenceRef(entity=s.series.entity, metric=s.series.metric, start_ns=t0,
                                end_ns=t1, batch_ids=view.batches_between(t0, t1, limit=4)))
    incident = None
    incident_id = "none"
    alert = analysis.alert
    if alert is not None:
        # An external alert opened the incident: it stays open (an alert resolves from
        # outside), whatever the series path's own alarm runs did. Its finding comes first,
        # with the event's batch as evidence; the alarm runs follow unchanged.
        findings.insert(0, Finding(
            detector=ALERT_DETECTOR, metric="event:alert", entity=alert.entity,
            onset_ns=alert.ts_ns, severity=alert.severity,
            score=0.0, value=1.0, direction="event"))
        refs.insert(0, EvidenceRef(entity=alert.entity, metric="event:alert",
                                   start_ns=alert.ts_ns, end_ns=alert.ts_ns,
                                   batch_ids=[alert.batch_id]))
        incident_id = ctx.incident_id or "inc-" + canonical_digest(
            [view.host, alert.fingerprint, alert.ts_ns])[:16]
        incident = IncidentState(incident_id=incident_id, fingerprint=alert.fingerprint,
                                 state="opened")
    elif findings:
        first = findings[0]
        fingerprint = f"series:{first.entity}/{first.metric}"[:256]
        incident_id = ctx.incident_id or "inc-" + canonical_digest(
            [view.host, fingerprint, first.onset_ns])[:16]
        still_open = analysis.alarm_runs[0][1] >= analysis.grid.shape[0]
        incident = IncidentState(incident_id=incident_id, fingerprint=fingerprint,
                                 state="opened" if still_open else "closed")
    peak = float(analysis.sample_score.max(initial=0.0))
    runs_found = len(findings) - (alert is not None)
    summary = (f"series path: {len(analysis.scores)} series against baselines up to "
               f"{analysis.base_end_ns}; {runs_found} alarm runs above |z| "
               f"{analysis.threshold:.2f}; peak |z| {peak:.2f}"
               + (f"; incident opened by alert {alert.name} at {alert.ts_ns}" if alert else ""))
    payload = AnomalyFinding(
        risk_level=("high" if peak >= 4 * analysis.threshold else "medium") if runs_found
        else ALERT_RISK.get(alert.severity, "medium") if alert is not None else "none",
        findings=findings, incident=incident, summary=summary[:1024])
    inputs = [observation.artifact_id] + ([prior.artifact_id] if prior is not None else [])
    return make_artifact(
        kind=ArtifactKind.ANOMALY_FINDING, run_id=ctx.run_id, incident_id=incident_id,
        logical_time=view.end_ns, payload=payload, input_artifact_ids=inputs,
        evidence_refs=refs)


def _peak_z(s: SeriesScore, t0: int, t1: int, two_sided: bool) -> float:
    inside = (s.series.ts >= t0) & (s.series.ts <= t1)
    if not inside.any():
        return 0.0
    z = s.z[inside]
    return float(np.abs(z).max() if two_sided else z.max())


def _squash(z: float) -> float:
    return math.log1p(max(z, 0.0))


def entity_features(analysis: SeriesAnalysis, t0: int, t1: int) -> dict[str, dict[str, float]]:
    """Per blamable entity, the ranking features over [t0, t1] (see the module docstring)."""
    by_service: dict[str, list[str]] = {}
    feats: dict[str, dict[str, float]] = {}
    edge_z: dict[str, dict[str, float]] = {}
    for s in analysis.scores:
        entity, metric = s.series.entity, s.series.metric
        if _EDGE.match(entity):
            edge_z.setdefault(entity, {})[metric] = _peak_z(s, t0, t1, two_sided=False)
            continue
        if entity.startswith(NOT_BLAMED):
            continue
        f = feats.setdefault(entity, {})
        if entity not in by_service.get(service_of(entity), []):
            by_service.setdefault(service_of(entity), []).append(entity)
        up = _peak_z(s, t0, t1, two_sided=False)
        f[f"z:{metric}"] = _r(_peak_z(s, t0, t1, two_sided=True))
        if _CPU.match(metric):
            f["cpu"] = max(f.get("cpu", 0.0), _squash(up))
        elif _SERVER_LATENCY.match(metric):
            f["latency"] = max(f.get("latency", 0.0), _squash(up))
    for edge in sorted(edge_z):
        match = _EDGE.match(edge)
        assert match is not None
        client = edge_z[edge].get("client_latency_p50_seconds")
        if client is None:
            continue
        gap = _squash(client) - _squash(edge_z[edge].get("server_latency_p50_seconds", 0.0))
        for entity in by_service.get(match.group("dst"), []):
            feats[entity]["network"] = max(feats[entity].get("network", 0.0), gap)
    for f in feats.values():
        for name in ("cpu", "latency", "network"):
            if name in f:
                f[name] = _r(f[name])
        if not any(name in f for name in ("cpu", "latency", "network")):
            f["deviation"] = _r(max((abs(v) for k, v in f.items() if k.startswith("z:")),
                                    default=0.0))
    return feats


def entity_score(features: Mapping[str, float]) -> float:
    """Named signals add up with equal weights; anonymous entities score their deviation."""
    named = [features[k] for k in ("cpu", "latency", "network") if k in features]
    if named:
        return float(sum(max(v, 0.0) for v in named))
    return _squash(features.get("deviation", 0.0))


def ranked_metrics(features: Mapping[str, float]) -> list[str]:
    """An entity's metrics by |z| over the scored interval, largest first (culprits)."""
    z = [(-abs(v), k[2:]) for k, v in features.items() if k.startswith("z:")]
    return [name for _, name in sorted(z)]


def hypothesise(finding: Artifact, view: EvidenceView, ctx: RoleContext) -> Artifact:
    """root_cause_hypothesis of an imported window: entities ranked over the first
    :data:`SCORE_SAMPLES` samples from the incident's onset."""
    assert isinstance(finding.payload, AnomalyFinding)
    analysis = analyse(view, ctx)
    hypotheses: list[Hypothesis] = []
    start = incident_onset(analysis, ctx.config.detection.close_samples)
    if start is not None:
        stop = min(start + SCORE_SAMPLES, analysis.grid.shape[0])
        t0, t1 = int(analysis.grid[start]), int(analysis.grid[stop - 1])
        feats = entity_features(analysis, t0, t1)
        scored = sorted(((entity_score(f), e) for e, f in feats.items()),
                        key=lambda x: (-round(x[0], 9), x[1]))
        scored = [x for x in scored if x[0] > 0][: ctx.config.max_hypotheses]
        total = sum(score for score, _ in scored)
        for rank, (score, entity) in enumerate(scored, start=1):
            f = feats[entity]
            metrics = ranked_metrics(f)
            share = score / total if total > 0 else 0.0
            hypotheses.append(Hypothesis(
                rank=rank, fault_class=FAULT_CLASS, entity=entity,
                entity_kind="host" if entity.startswith("node/") else "other",
                title=f"{entity} deviates from its baseline (most: {', '.join(metrics[:3])})"[
                    :1024],
                score=_r(score), confidence=_r(min(1.0, 0.5 * min(1.0, score / 10) + 0.5 * share)),
                features=dict(sorted(f.items())),
                evidence_refs=[EvidenceRef(entity=entity, metric=m, start_ns=t0, end_ns=t1,
                                           batch_ids=view.batches_between(t0, t1, limit=2))
                               for m in metrics[:3]],
                counter_evidence=[f"{k} stayed near baseline" for k in ("cpu", "latency")
                                  if k in f and f[k] < 0.1][:8],
                next_diagnostics=[f"compare {m} of {entity} with its callers and callees"
                                  for m in metrics[:2]]))
    payload = RootCauseHypothesis(hypotheses=hypotheses, ranked_by="deterministic")
    refs = [r for h in hypotheses[:3] for r in h.evidence_refs[:2]]
    return make_artifact(
        kind=ArtifactKind.ROOT_CAUSE_HYPOTHESIS, run_id=ctx.run_id,
        incident_id=finding.incident_id, logical_time=view.end_ns,
        status=ArtifactStatus.OK if hypotheses else ArtifactStatus.NO_DATA,
        payload=payload, input_artifact_ids=[finding.artifact_id], evidence_refs=refs,
        recorded_activity_ids=ctx.take_activity_ids())


D = TypeVar("D", bound=Callable[..., Artifact])
H = TypeVar("H", bound=Callable[..., Artifact])


def route(host_detect: D, host_hypothesise: H) -> tuple[D, H]:
    """The analyzer's two entry points, sending imported series windows down this path.

    Called once by sreagent.roles.analyzer (its single hook); anything :func:`applies` refuses
    goes to the host detectors unchanged.
    """

    def detect_routed(observation: Artifact, view: EvidenceView, ctx: RoleContext,
                      prior: Artifact | None = None) -> Artifact:
        if applies(view):
            return detect(observation, view, ctx, prior)
        return host_detect(observation, view, ctx, prior)

    def hypothesise_routed(finding: Artifact, view: EvidenceView, ctx: RoleContext) -> Artifact:
        if applies(view):
            return hypothesise(finding, view, ctx)
        return host_hypothesise(finding, view, ctx)

    for routed, host in ((detect_routed, host_detect), (hypothesise_routed, host_hypothesise)):
        routed.__doc__ = host.__doc__
        routed.__name__ = host.__name__
        routed.__qualname__ = host.__qualname__
        routed.__module__ = host.__module__
    return detect_routed, hypothesise_routed  # type: ignore[return-value]


__all__ = [
    "FAULT_CLASS",
    "SCORE_SAMPLES",
    "SeriesAnalysis",
    "analyse",
    "applies",
    "detect",
    "entity_features",
    "entity_score",
    "find_alarm_runs",
    "hypothesise",
    "incident_onset",
    "ranked_metrics",
    "route",
    "service_of",
]
