"""The public datasets in the regression report: the chain's Nezha/NAB figures beside the
scenario library's, compared with the baseline.

A toy dataset named ``nezha`` is built in the sreagent-cases/1 layout with the builders of
tests/eval (seeded noise, a CPU fault and a network delay whose culprits are known by
construction), so the chain's answers are known and a report run stays short; relabelling a
case's root cause to another service makes the very same chain output a miss, so AC@1 drops.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from sreagent.reports.regression import (
    REGRESSION_DATASETS,
    compare_with_baseline,
    dataset_figures,
    dataset_runs,
    dataset_table,
)
from tests.eval.test_chain import CART, PAY, T0, microservices, rca_labels, write_case
from tests.notebooks.test_report_cli import sreagent

CONTROL = "29_control_web_cron_backup"


def toy_nezha(root: Path, *, cpu_case_culprit: str = CART) -> Path:
    """``root/nezha``: a CPU fault in cart (labelled ``cpu_case_culprit``) and a network delay
    into pay, both metric-observable."""
    inject = T0 + timedelta(minutes=30)
    write_case(root, "nezha", "c1", "rca", rca_labels(cpu_case_culprit, "cpu_contention", inject),
               microservices(1, "cpu"))
    write_case(root, "nezha", "c2", "rca", rca_labels(PAY, "network_delay", inject),
               microservices(2, "net"))
    return root


def test_dataset_figures_come_from_the_chain_and_a_missing_dataset_is_not_computed(
        tmp_path: Path) -> None:
    healthy = dataset_runs(toy_nezha(tmp_path / "healthy"))
    assert [(r["dataset"], r["task"]) for r in healthy] == list(REGRESSION_DATASETS.items())
    nezha, nab = healthy
    assert nezha["status"] == "ran" and nezha["cases"] == 2
    assert nab["status"].startswith("not run") and nab["summary"] is None
    figs = dataset_figures(healthy)
    assert figs == {"dataset.nezha.ac1": 1.0, "dataset.nezha.ac3": 1.0,
                    "dataset.nezha.observable.ac1": 1.0, "dataset.nezha.observable.ac3": 1.0}
    table = dataset_table(healthy)
    assert {r["figure"] for r in table if r["value"] is None} == {
        "dataset.nab.nab_standard", "dataset.nab.f1"}

    # The chain still blames cart; labelled pay, the cpu case becomes a miss at 1 and 3
    # (the toy mesh has three services, so pay may still be within the top 3).
    wrong = dataset_figures(dataset_runs(toy_nezha(tmp_path / "wrong", cpu_case_culprit=PAY)))
    assert wrong["dataset.nezha.ac1"] == 0.5
    baseline = {"scenarios": "all", "resolution_s": 5, "figures": figs}
    worse = compare_with_baseline(wrong, baseline, scenarios=None, resolution_s=5)
    assert [r.describe() for r in worse if r.figure.endswith("ac1")] == [
        "dataset.nezha.ac1: 0.5 (baseline 1)", "dataset.nezha.observable.ac1: 0.5 (baseline 1)"]
    # Not computable: missing, hence worse; deliberately skipped: not compared.
    missing = compare_with_baseline({}, baseline, scenarios=None, resolution_s=5)
    assert {r.figure for r in missing} == set(figs) and all(r.now is None for r in missing)
    assert compare_with_baseline({}, baseline, scenarios=None, resolution_s=5,
                                 compare_datasets=False) == []


@pytest.mark.slow
def test_regression_report_exits_1_when_a_dataset_figure_drops(tmp_path: Path) -> None:
    # One control scenario and no replays keep each run short; the datasets carry the test.
    replays = tmp_path / "replays"
    replays.mkdir()
    common = ["--scenario", CONTROL, "--replays", str(replays)]
    baseline = tmp_path / "baseline.json"
    healthy = sreagent("report", "regression", "-o", str(tmp_path / "healthy.html"), *common,
                       "--datasets", str(toy_nezha(tmp_path / "healthy")), "--no-baseline",
                       "--write-baseline", str(baseline))
    assert healthy.returncode == 0, healthy.stdout[-3000:] + healthy.stderr[-3000:]
    figures = json.loads(baseline.read_text())["figures"]
    assert figures["dataset.nezha.ac1"] == 1.0 and "dataset.nab.f1" not in figures
    html = (tmp_path / "healthy.html").read_text()
    assert "Public datasets" in html and "dataset.nezha.observable.ac3" in html

    degraded = sreagent("report", "regression", "-o", str(tmp_path / "degraded.html"), *common,
                        "--datasets", str(toy_nezha(tmp_path / "wrong", cpu_case_culprit=PAY)),
                        "--baseline", str(baseline))
    assert degraded.returncode == 1, degraded.stdout[-3000:] + degraded.stderr[-3000:]
    assert "dataset.nezha.ac1: 0.5 (baseline 1)" in degraded.stderr
    assert "WORSE" in (tmp_path / "degraded.html").read_text()

    gone = tmp_path / "no-such-datasets"
    missing = sreagent("report", "regression", "-o", str(tmp_path / "missing.html"), *common,
                       "--datasets", str(gone), "--baseline", str(baseline))
    assert missing.returncode == 1, missing.stdout[-3000:] + missing.stderr[-3000:]
    assert "dataset.nezha.ac1: missing (baseline 1)" in missing.stderr
    assert f"no datasets folder {gone}" in missing.stdout
    assert f"no datasets folder {gone}" in (tmp_path / "missing.html").read_text()

    skipped = sreagent("report", "regression", "-o", str(tmp_path / "skipped.html"), *common,
                       "--no-datasets", "--baseline", str(baseline))
    assert skipped.returncode == 0, skipped.stdout[-3000:] + skipped.stderr[-3000:]
    assert "public datasets were skipped" in (tmp_path / "skipped.html").read_text()
