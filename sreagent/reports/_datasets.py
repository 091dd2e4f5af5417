"""The public datasets in the regression report: the role chain on Nezha (rca) and NAB
(detection), through ``sreagent eval``'s own per-case runners and scorers.

Nothing is scored here: each case goes through :func:`sreagent.eval.chain.chain_rca` or
:func:`~sreagent.eval.chain.chain_detection` (imported into an evidence package, run and
recorded through the replay API) and the results through ``summarise_rca`` /
``summarise_detection``, exactly what ``sreagent eval`` reports as the chain's figures. The
baselines (BARO, N-sigma, windowed Gaussian) are not run: the report guards the chain.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REGRESSION_DATASETS: dict[str, str] = {"nezha": "rca", "nab": "detection"}
"""Every case of these runs (about 40 s on 2 cores). SMD and ASD are left out: their culprit
segments are dozens of chain runs each, over the report's 5-minute budget."""

DATASET_FIGURES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "rca": (
        ("ac1", ("metrics", "ac@1")),
        ("ac3", ("metrics", "ac@3")),
        ("observable.ac1", ("subsets", "metric_observable", "ac@1")),
        ("observable.ac3", ("subsets", "metric_observable", "ac@3")),
    ),
    "detection": (
        ("nab_standard", ("metrics", "nab_standard")),
        ("f1", ("metrics", "f1")),
    ),
}
"""Figure name (after ``dataset.<name>.``) -> where it sits in the ``sreagent eval`` summary."""


def dataset_runs(
    datasets_dir: Path | str, datasets: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The chain on every case of each dataset (name -> task) under ``datasets_dir``.

    One row per dataset: ``dataset``, ``task``, ``cases``, ``status`` (``ran``, or why it did
    not: the folder is missing) and ``summary`` (the chain's ``sreagent eval`` summary, or
    None). A missing dataset is a row, not an error: its figures are then not computable."""
    from sreagent.eval import load_dataset
    from sreagent.eval.chain import chain_detection, chain_rca
    from sreagent.eval.evaluate import summarise_detection, summarise_rca

    root = Path(datasets_dir)
    rows: list[dict[str, Any]] = []
    for name, task in (datasets or REGRESSION_DATASETS).items():
        row: dict[str, Any] = {"dataset": name, "task": task, "cases": 0, "summary": None}
        folder = root / name
        if not root.is_dir():
            rows.append({**row, "status": f"not run: no datasets folder {root}"})
            continue
        if not (folder / "cases").is_dir():
            rows.append({**row, "status": f"not run: no dataset folder {folder}"})
            continue
        dataset = load_dataset(folder)  # a malformed case fails here, naming it
        if dataset.task != task:
            rows.append({**row, "status": f"not run: {name} holds {dataset.task} cases"})
            continue
        with tempfile.TemporaryDirectory(prefix=f"sreagent-regression-{name}-") as tmp:
            if task == "rca":
                summary = summarise_rca([chain_rca(case, Path(tmp)) for case in dataset])
            else:
                summary = summarise_detection(
                    [chain_detection(case, Path(tmp)) for case in dataset]
                )
        rows.append({**row, "cases": len(dataset), "status": "ran", "summary": summary})
    return rows


def _lookup(summary: Mapping[str, Any], path: Sequence[str]) -> float | None:
    value: Any = summary
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def dataset_figures(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """``dataset.<name>.<figure>`` for every dataset that ran (None-valued ones left out)."""
    out: dict[str, float] = {}
    for row in rows:
        if row["summary"] is None:
            continue
        for figure, path in DATASET_FIGURES[row["task"]]:
            value = _lookup(row["summary"], path)
            if value is not None:
                out[f"dataset.{row['dataset']}.{figure}"] = round(value, 4)
    return out


def dataset_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per dataset figure for the report: dataset, task, cases, figure, value, status."""
    figs = dataset_figures(rows)
    table = []
    for row in rows:
        for figure, _ in DATASET_FIGURES[row["task"]]:
            name = f"dataset.{row['dataset']}.{figure}"
            table.append(
                {
                    "dataset": row["dataset"],
                    "task": row["task"],
                    "cases": row["cases"],
                    "figure": name,
                    "value": figs.get(name),
                    "status": row["status"],
                }
            )
    return table
