"""The public names of sreagent.eval, pinned: the chain integration (issue 6/7) builds on them."""

from __future__ import annotations

import sreagent.eval

EXPECTED_EXPORTS = {
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
}


def test_public_names_are_pinned() -> None:
    assert set(sreagent.eval.__all__) == EXPECTED_EXPORTS
    for name in EXPECTED_EXPORTS:
        assert getattr(sreagent.eval, name) is not None
