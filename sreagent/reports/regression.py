"""Public face of the regression report's figures (imported by notebooks/regression.ipynb)."""

from sreagent.reports._regression import (
    BASELINE_FORMAT,
    DEFAULT_RESOLUTION_S,
    LOWER_IS_BETTER,
    Regression,
    baseline_document,
    check_comparable,
    compare_with_baseline,
    figures,
    load_baseline,
    replay_runs,
    scenario_runs,
)

__all__ = [
    "BASELINE_FORMAT",
    "DEFAULT_RESOLUTION_S",
    "LOWER_IS_BETTER",
    "Regression",
    "baseline_document",
    "check_comparable",
    "compare_with_baseline",
    "figures",
    "load_baseline",
    "replay_runs",
    "scenario_runs",
]
