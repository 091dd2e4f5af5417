"""Evaluation on labelled telemetry (``sreagent-cases/1`` datasets): cases, scorers, baselines.

- :mod:`sreagent.eval.cases` - load and validate a dataset directory.
- :mod:`sreagent.eval.scoring` - pure scorers (AC@k, Avg@k, event/point-wise F1, detection
  delay, NAB v1.1, HitRate@P%).
- :mod:`sreagent.eval.baselines` - BARO (re-implementation), N-sigma, NAB windowed Gaussian.
- :mod:`sreagent.eval.evaluate` - per-case results in, the ``--json`` report out.
- :mod:`sreagent.eval.chain` - the role chain on each case (imported, run and recorded through
  the replay API) beside the baselines: what ``sreagent eval`` runs.

Method and formulas: docs/evaluation-method.md.
"""

from sreagent.eval.cases import (
    CASES_FORMAT,
    Case,
    CaseSpec,
    Dataset,
    DetectionLabels,
    RcaLabels,
    load_case,
    load_dataset,
    read_metrics,
)
from sreagent.eval.evaluate import (
    DETECTION_BASELINES,
    RCA_BASELINES,
    DetectionResult,
    RcaResult,
    baseline_detection,
    baseline_rca,
    case_timeline,
    evaluate_baselines,
    rca_alarm_time,
    report,
    summarise_detection,
    summarise_rca,
)

__all__ = [
    "CASES_FORMAT",
    "DETECTION_BASELINES",
    "RCA_BASELINES",
    "Case",
    "CaseSpec",
    "Dataset",
    "DetectionLabels",
    "DetectionResult",
    "RcaLabels",
    "RcaResult",
    "baseline_detection",
    "baseline_rca",
    "case_timeline",
    "evaluate_baselines",
    "load_case",
    "load_dataset",
    "rca_alarm_time",
    "read_metrics",
    "report",
    "summarise_detection",
    "summarise_rca",
]
