"""Public face of the regression report's figures (imported by notebooks/regression.ipynb)."""

from sreagent.reports._datasets import (
    DATASET_FIGURES,
    REGRESSION_DATASETS,
    dataset_figures,
    dataset_runs,
    dataset_table,
)
from sreagent.reports._regression import (
    BASELINE_FORMAT,
    DATASET_PREFIX,
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
    "DATASET_FIGURES",
    "DATASET_PREFIX",
    "DEFAULT_RESOLUTION_S",
    "LOWER_IS_BETTER",
    "REGRESSION_DATASETS",
    "Regression",
    "baseline_document",
    "check_comparable",
    "compare_with_baseline",
    "dataset_figures",
    "dataset_runs",
    "dataset_table",
    "figures",
    "load_baseline",
    "replay_runs",
    "scenario_runs",
]
