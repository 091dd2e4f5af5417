"""The role chain on labelled cases: import, run through replay's API, record, read the outputs.

Per case: the case is imported into an evidence package (``sreagent.importers``, labels never
copied), the chain runs on the package's tables through :mod:`sreagent.replay`'s public API
(``RunInputs`` + ``run_chain``) and every run is recorded with ``record_run``, so each figure
can be reproduced with ``sreagent replay`` on the recorded package. What the chain is handed
besides telemetry is the end of its baseline (``detection.baseline_seconds`` in the recorded
chain configuration) and, where the protocol hands over an alarm, an external alert:

* rca: the alarm time (the labelled ``inject_time``, the same instant every baseline gets),
  both as the baseline's end and as an ``alert`` event at that instant, which opens the
  incident the chain must explain (:mod:`sreagent.roles._external`);
* detection with a training part: the end of ``baseline.parquet``; no alert;
* detection of a single series without one (NAB): the end of NAB's probationary period;
* culprit segments: an alert at each labelled segment's start (segments come from the
  labels, as in InterFusion's evaluation), the baseline being the training part (as much of
  it as ``detection.baseline_fraction`` allows; the test part before the segment is left out
  of the run) or, without one, a :data:`CULPRIT_PRE_WINDOW` pre-window.

Alerts are event rows of the run's telemetry, so the recorded package holds them and
``sreagent replay`` reproduces the run.

The chain's outputs are read from its artifacts: the ranked hypotheses' entities (rca), the
anomaly finding's alarm runs (``evidence_refs``, detection) and the top hypothesis's per-metric
``z:<metric>`` features (culprits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sreagent.artifacts import AnomalyFinding, ArtifactKind, RootCauseHypothesis
from sreagent.chain import ChainResult
from sreagent.chain._runner import live_activities
from sreagent.errors import BadInput
from sreagent.eval import baselines as bl
from sreagent.eval import scoring as sc
from sreagent.eval.cases import Case, load_dataset
from sreagent.eval.evaluate import (
    DetectionResult,
    RcaResult,
    Task,
    case_timeline,
    rca_alarm_time,
    summarise_detection,
    summarise_rca,
)
from sreagent.eval.evaluate import evaluate_dataset_baselines as baselines_of
from sreagent.evidence import EvidencePackage
from sreagent.importers import alert_tables, import_path
from sreagent.replay import RunInputs, record_run, run_chain
from sreagent.roles._external import ALERT_DETECTOR
from sreagent.roles._series import ranked_metrics
from sreagent.runtime import ChainConfig, EvidenceView
from sreagent.runtime._config import DetectionConfig

CULPRIT_PRE_WINDOW = timedelta(hours=4)
"""Baseline before a labelled culprit segment when the case has no training part: long enough
for a robust median/IQR at minute (SMD) and five-minute (ASD) resolution."""
RCA_ALERT = "labelled_alarm"
"""``alertname`` of the alert that hands an rca case's alarm time to the chain."""
SEGMENT_ALERT = "labelled_segment"
"""``alertname`` of the alert at the start of a labelled culprit segment."""
MAX_BASELINE_FRACTION = 0.9
"""The chain configuration's upper bound on ``detection.baseline_fraction``."""
TELEMETRY = ("batches", "samples", "processes", "events")

Progress = Callable[[str], None]


def _ns(instant: datetime | np.datetime64) -> int:
    if isinstance(instant, np.datetime64):
        return int(instant.astype("datetime64[ns]").astype(np.int64))
    return int(instant.timestamp() * 1_000_000) * 1000


def chain_config(start_ns: int, split_ns: int, end_ns: int) -> ChainConfig:
    """The default chain configuration with its baseline ending at ``split_ns``.

    The analyzer's baseline is ``start + min(baseline_seconds, baseline_fraction * span)``;
    both are set so that the minimum is the split.
    """
    span = end_ns - start_ns
    length = split_ns - start_ns
    if length <= 0 or length >= MAX_BASELINE_FRACTION * span:
        raise ValueError(f"baseline {length} ns does not fit a window of {span} ns")
    return ChainConfig(detection=DetectionConfig(
        baseline_seconds=length / 1e9, baseline_fraction=MAX_BASELINE_FRACTION))


@dataclass
class CaseRunner:
    """One imported case: its package tables, kept in memory for every run on the case."""

    case: Case
    work: Path
    tables: dict[str, pa.Table]
    host: str

    @classmethod
    def open(cls, case: Case, work: Path) -> CaseRunner:
        out = work / "imported" / case.case_id
        result = import_path(case.directory, out, fmt="case")[0]
        package = EvidencePackage(result.package)
        tables = {name: package.table(name) for name in TELEMETRY}
        hosts = sorted(set(tables["samples"].column("host").to_pylist()))
        return cls(case, work, tables, hosts[0])

    def _windowed(self, spans: Sequence[tuple[int, int]]) -> dict[str, pa.Table]:
        out = {}
        for name, table in self.tables.items():
            column = "sent_at_ns" if name == "batches" else "ts_ns"
            if table.num_rows:
                t = table.column(column)
                keep = None
                for lo, hi in spans:
                    inside = pc.and_(pc.greater_equal(t, lo), pc.less_equal(t, hi))
                    keep = inside if keep is None else pc.or_(keep, inside)
                table = table.filter(keep)
            out[name] = table
        return out

    def run(self, name: str, start_ns: int, split_ns: int, end_ns: int, *,
            alert: tuple[int, str] | None = None,
            spans: Sequence[tuple[int, int]] | None = None) -> ChainResult:
        """Run and record the chain over [start, end] with its baseline ending at the split.

        ``alert`` (instant, name): an external alert event added to the run's telemetry.
        ``spans``: the parts of [start, end] whose telemetry the run gets (default all of it).
        """
        tables = self._windowed(spans or [(start_ns, end_ns)])
        if alert is not None:
            extra = alert_tables(host=self.host, ts_ns=alert[0], name=alert[1],
                                 summary="alarm time handed over by the evaluation protocol")
            tables = {k: pa.concat_tables([tables[k], extra[k]]) for k in tables}
        inputs = RunInputs(
            run_id=f"eval-{self.case.spec.dataset}-{name}", host=self.host,
            window=(start_ns, end_ns), chain=chain_config(start_ns, split_ns, end_ns))
        # What replay's package_views does with the recorded package (the same tables).
        view = EvidenceView.from_tables(tables, host=self.host, start_ns=start_ns,
                                        end_ns=end_ns)
        result = run_chain(inputs, view, activities=live_activities())
        record_run(
            self.work / "runs" / name, inputs=inputs, result=result, source="eval",
            tables=tables, extra_config={"eval": {
                "dataset": self.case.spec.dataset, "case_id": self.case.case_id,
                "baseline_end_ns": split_ns}})
        return result


def culprit_run_window(seg_start: int, seg_end: int, step: int, train_start: int,
                       last_train: int | None
                       ) -> tuple[int, int, int, list[tuple[int, int]]]:
    """``(start, split, end, spans)`` of the chain run that ranks one culprit segment.

    With a training part the baseline is the training part, as much of it (counting back from
    its end) as the configuration's ``baseline_fraction`` bound allows, and the run's
    telemetry is that part and the segment; the test part in between is left out (it is not
    known to be normal). Without one, a :data:`CULPRIT_PRE_WINDOW` before the segment.
    """
    split = seg_start - step // 2
    if last_train is None or last_train >= split:
        pre = int(CULPRIT_PRE_WINDOW.total_seconds() * 1e9)
        start, end = split - pre, max(seg_end, split + pre // 8)
        return start, split, end, [(start, end)]
    split = last_train + step // 2
    room = int(MAX_BASELINE_FRACTION / (1 - MAX_BASELINE_FRACTION) * (seg_end - split)) - step
    start = max(train_start, split - room)
    return start, split, seg_end, [(start, last_train), (seg_start, seg_end)]


def _hypotheses(result: ChainResult) -> list[tuple[str, dict[str, float]]]:
    art = result.of_kind(ArtifactKind.ROOT_CAUSE_HYPOTHESIS)
    if art is None or not isinstance(art.payload, RootCauseHypothesis):
        return []
    return [(h.entity, dict(h.features)) for h in art.payload.hypotheses]


def alarm_spans(result: ChainResult) -> list[tuple[int, int]]:
    """The chain's alarm runs ``[start_ns, end_ns]`` (the anomaly finding's evidence refs)."""
    art = result.of_kind(ArtifactKind.ANOMALY_FINDING)
    if art is None or not isinstance(art.payload, AnomalyFinding):
        return []
    # The series path writes one evidence ref per finding; an alert's finding is not an alarm.
    return [(r.start_ns, r.end_ns) for f, r in zip(art.payload.findings, art.evidence_refs,
                                                   strict=False)
            if f.detector != ALERT_DETECTOR]


def chain_rca(case: Case, work: Path) -> RcaResult:
    """The chain's ranking of one rca case, handed the same alarm time as the baselines."""
    runner = CaseRunner.open(case, work)
    window = case.spec.window
    alarm = _ns(rca_alarm_time(case))
    result = runner.run(case.case_id, _ns(window.start), alarm, _ns(window.end),
                        alert=(alarm, RCA_ALERT))
    entities = [e for e, _ in _hypotheses(result) if bl.is_service_entity(e)]
    services: list[str] = []
    for e in entities:
        service = bl.pod_service(e) or e
        if service not in services:
            services.append(service)
    return RcaResult(case, tuple(services), tuple(entities))


def chain_detection(case: Case, work: Path) -> DetectionResult:
    """The chain's alarms over one detection case, and its culprit ranking per segment."""
    runner = CaseRunner.open(case, work)
    timeline = case_timeline(case)
    test_start = _ns(timeline[0])
    end = _ns(timeline[-1])
    train = case.baseline()
    last_train: int | None = None
    if train is not None and train.height:
        train_times = train["ts"].unique().sort()
        start = _ns(train_times[0])
        last_train = _ns(train_times[-1])
        split = last_train + (test_start - last_train) // 2
    else:
        # NAB: the chain learns on the probationary period, which NAB does not score.
        probation = max(sc.nab_probation(len(timeline)), 3)
        start = test_start
        split = (_ns(timeline[probation - 1]) + _ns(timeline[probation])) // 2
    result = runner.run(case.case_id, start, split, end)
    times = timeline.astype("datetime64[ns]").astype(np.int64)
    # An alarm is an incident opening: the onset of each alarm run, not every sample it lasts
    # (NAB charges every alarmed sample; an on-call engineer is paged once per run).
    alarms = np.isin(times, [start_ns for start_ns, _ in alarm_spans(result)])
    culprits: list[tuple[str, ...]] = []
    step = int(np.median(np.diff(times))) if len(times) > 1 else 60_000_000_000
    for i, segment in enumerate(case.spec.detection.culprits or ()):
        run_start, split, run_end, spans = culprit_run_window(
            _ns(segment.start), _ns(segment.end), step, start, last_train)
        hyps = _hypotheses(runner.run(f"{case.case_id}-segment-{i:03d}", run_start, split,
                                      run_end, alert=(_ns(segment.start), SEGMENT_ALERT),
                                      spans=spans))
        culprits.append(tuple(ranked_metrics(hyps[0][1])) if hyps else ())
    return DetectionResult(case, timeline, alarms, None, tuple(culprits))


CHAIN_PROTOCOL = {
    "chain": "the role chain (sreagent.roles, series path) run through sreagent.replay's "
    "API on each case imported into an evidence package; every run recorded and replayable",
    "chain_baseline": "rca: up to the labelled inject_time (as for the baselines); detection: "
    "the training part, or NAB's probationary period; culprits: the training part (as much as "
    "baseline_fraction allows), the segment alone analysed",
    "chain_alerts": "rca: an alert event at the labelled inject_time; culprits: an alert event "
    "at each labelled segment's start; each opens the incident the chain explains, its own "
    "detection unchanged (none in detection runs)",
    "chain_thresholds": "detection.z_open of the chain configuration (tuned on the scenario "
    "library) and, for training parts of >= 1000 samples, their own 99.9th percentile",
    "chain_alarms": "the onset of each alarm run (incident openings), label-free thresholds",
}


def evaluate(
    dataset_dir: Path | str,
    task: Task,
    *,
    work: Path,
    progress: Progress | None = None,
    case_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``sreagent eval``: the chain and every baseline on the same cases, one report.

    ``work`` receives the imported packages and the recorded chain runs. ``progress`` is
    called before each case and baseline step. ``case_ids`` restricts the run to some cases.
    Raises :class:`BadInput` naming the case and field on a malformed case (before anything
    runs) or when the task does not match the cases.
    """
    dataset = load_dataset(dataset_dir)
    if dataset.task != task:
        raise BadInput(
            f"dataset {dataset.name} holds {dataset.task} cases, not {task}",
            path=str(dataset.root), field="--task")
    if case_ids is not None:
        unknown = sorted(set(case_ids) - {c.case_id for c in dataset})
        if unknown:
            raise BadInput(f"no such cases in {dataset.name}: {', '.join(unknown)}",
                           field="--case")
        dataset = dataset.model_copy(
            update={"cases": tuple(c for c in dataset if c.case_id in set(case_ids))})
    rca: list[RcaResult] = []
    detection: list[DetectionResult] = []
    for case in dataset:
        if progress:
            progress(f"chain {case.case_id}")
        if task == "rca":
            rca.append(chain_rca(case, work))
        else:
            detection.append(chain_detection(case, work))
    chain = summarise_rca(rca) if task == "rca" else summarise_detection(detection)
    # The baselines' report, with the chain's figures in the top-level keys.
    baselines = baselines_of(dataset, task, progress=progress)
    out: dict[str, Any] = {"dataset": dataset.name, "task": task, "cases": len(dataset)}
    out.update({k: chain[k] for k in ("metrics", "subsets", "by_fault_type") if k in chain})
    out["baselines"] = baselines["baselines"]
    out["protocol"] = {**CHAIN_PROTOCOL, **baselines.get("protocol", {})}
    return out


__all__ = [
    "CHAIN_PROTOCOL",
    "CULPRIT_PRE_WINDOW",
    "RCA_ALERT",
    "SEGMENT_ALERT",
    "CaseRunner",
    "alarm_spans",
    "chain_config",
    "chain_detection",
    "chain_rca",
    "culprit_run_window",
    "evaluate",
]
