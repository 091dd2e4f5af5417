"""Dataset-level summaries on a toy dataset whose every figure was worked out by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sreagent.eval import (
    DetectionResult,
    RcaResult,
    load_dataset,
    report,
    summarise_detection,
    summarise_rca,
)
from sreagent.eval.evaluate import case_timeline, rca_alarm_time

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def iso(minute: float) -> str:
    return (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_case(
    root: Path, case_id: str, task: str, labels: dict[str, Any], minutes: int = 20
) -> None:
    case_dir = root / "toy" / "cases" / case_id
    case_dir.mkdir(parents=True)
    doc = {
        "format": "sreagent-cases/1",
        "dataset": "toy",
        "case_id": case_id,
        "task": task,
        "window": {"start": iso(0), "end": iso(minutes - 1)},
        "labels": labels,
        "source": {"repo": "o/r", "commit": "c", "path": "p"},
    }
    (case_dir / "case.json").write_text(json.dumps(doc))
    pl.DataFrame(
        {
            "ts": [T0 + timedelta(minutes=i) for i in range(minutes)],
            "entity": [case_id] * minutes,
            "metric": ["m01"] * minutes,
            "value": [float(i % 3) for i in range(minutes)],
        },
        schema={
            "ts": pl.Datetime("ms", "UTC"),
            "entity": pl.String,
            "metric": pl.String,
            "value": pl.Float64,
        },
    ).write_parquet(case_dir / "metrics.parquet")


def test_detection_summary_of_two_toy_cases(tmp_path: Path) -> None:
    write_case(
        tmp_path,
        "a",
        "detection",
        {
            "anomaly_windows": [[iso(5), iso(8)]],
            "culprits": [{"start": iso(5), "end": iso(8), "metrics": ["m01", "m02"]}],
        },
    )
    write_case(
        tmp_path,
        "b",
        "detection",
        {
            "anomaly_windows": [[iso(4), iso(5)], [iso(10), iso(12)]],
            "culprits": [
                {"start": iso(4), "end": iso(5), "metrics": ["m03"]},
                {"start": iso(10), "end": iso(12), "metrics": ["m03"]},
            ],
        },
    )
    a, b = load_dataset(tmp_path / "toy").cases
    results = [
        # case a: alarms at 6, 7 (one run inside the window) and 15 (a false run)
        DetectionResult.from_alarm_times(
            a, [T0 + timedelta(minutes=m) for m in (6, 7, 15)], culprits=[["m02", "m03", "m01"]]
        ),
        # case b: one alarm at 11:30, which belongs to sample 11; the first window is missed
        DetectionResult.from_alarm_times(
            b, [T0 + timedelta(minutes=11.5)], culprits=[["m03"], ["m01", "m03"]]
        ),
    ]
    m = summarise_detection(results)["metrics"]
    assert m["cases"] == 2 and m["windows"] == 3
    # event-wise, summed over cases: 2 of 3 windows detected, 2 of 3 alarm runs true
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    # points without adjustment: tp 3 (6, 7, 11), fp 1 (15), fn 6 (5, 8, 4, 5, 10, 12)
    assert (m["precision_point"], m["recall_point"]) == pytest.approx((3 / 4, 3 / 9))
    # with adjustment: a's window and b's second window count whole: tp 7, fp 1, fn 2
    assert (m["precision_point_adjusted"], m["recall_point_adjusted"]) == pytest.approx(
        (7 / 8, 7 / 9)
    )
    assert m["f1_point_adjusted"] == pytest.approx(98 / 119)
    # delays: a 6 - 5 = 1 min, b 11 - 10 = 1 min
    assert m["delay_mean_s"] == 60.0 and m["delay_median_s"] == 60.0
    # HitRate: a {m01, m02} top-2 [m02, m03] -> 1/2, top-3 -> 1; b [m03] -> 1 and [m01] -> 0 at @100
    # (floor(1.5 x 1) = 1, so @150 is the same for single-metric segments)
    assert m["hitrate@100"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["hitrate@150"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["culprit_segments"] == 3
    # NAB (n = 20, probation 3 samples): a: first alarm 6 in window (5, 8), W 4:
    #   sigma(-0.75)/sigma(-1) = 0.966989; alarm 15: y = 7/3 -> 0.11 x -0.999983 = -0.109998
    # b: window (4, 5) missed -1; alarm 11 in (10, 12), W 3: sigma(-2/3)/sigma(-1) = 0.943742
    # S = 0.800733; null -3, perfect 3 -> 100 (3.800733) / 6 = 63.3456
    assert m["nab_standard"] == pytest.approx(63.3456, abs=1e-3)
    assert m["nab_low_fp"] < m["nab_standard"] < m["nab_low_fn"]


def test_detection_summary_refuses_a_wrong_number_of_culprit_rankings(tmp_path: Path) -> None:
    write_case(
        tmp_path,
        "a",
        "detection",
        {
            "anomaly_windows": [[iso(5), iso(8)]],
            "culprits": [{"start": iso(5), "end": iso(8), "metrics": ["m01"]}],
        },
    )
    (case,) = load_dataset(tmp_path / "toy").cases
    with pytest.raises(ValueError, match="0 culprit rankings for 1"):
        summarise_detection([DetectionResult.from_alarm_times(case, [])])
    assert len(case_timeline(case)) == 20


def test_rca_summary_and_report_on_toy_cases(tmp_path: Path) -> None:
    base = {
        "inject_time": iso(10),
        "root_cause_entity": "x-579f59597d-wc2lz",
        "root_cause_service": "x",
    }
    write_case(tmp_path, "r1", "rca", {**base, "fault_type": "cpu", "metric_observable": True})
    write_case(tmp_path, "r2", "rca", {**base, "fault_type": "cpu", "metric_observable": True})
    write_case(
        tmp_path, "r3", "rca", {**base, "fault_type": "exception", "metric_observable": False}
    )
    dataset = load_dataset(tmp_path / "toy")
    r1, r2, r3 = dataset.cases
    assert rca_alarm_time(r1) == T0 + timedelta(minutes=10)
    results = [
        RcaResult(r1, ("x", "y"), ("x-579f59597d-wc2lz",)),  # hit at 1
        RcaResult(r2, ("y", "z", "w", "x")),  # hit at 4
        RcaResult(r3, ("y", "z")),  # miss
    ]
    summary = summarise_rca(results)
    # AC@1 = 1/3; AC@3 = 1/3; Avg@5 = (1/3 + 1/3 + 1/3 + 2/3 + 2/3) / 5 = 7/15
    assert summary["metrics"] == pytest.approx(
        {
            "cases": 3,
            "ac@1": 1 / 3,
            "ac@3": 1 / 3,
            "avg@5": 7 / 15,
            "ac@1_entity": 1 / 3,
            "ac@3_entity": 1 / 3,
            "avg@5_entity": 1 / 3,
        }
    )
    assert summary["subsets"]["metric_observable"]["cases"] == 2
    assert summary["subsets"]["metric_observable"]["ac@1"] == pytest.approx(0.5)
    assert summary["by_fault_type"]["exception"] == pytest.approx(
        {
            "cases": 1,
            "ac@1": 0.0,
            "ac@3": 0.0,
            "avg@5": 0.0,
            "ac@1_entity": 0.0,
            "ac@3_entity": 0.0,
            "avg@5_entity": 0.0,
        }
    )
    out = report(dataset, "rca", chain=summary, baselines={"alphabetical": summary})
    assert set(out) == {
        "dataset",
        "task",
        "cases",
        "metrics",
        "subsets",
        "by_fault_type",
        "baselines",
    }
    assert out["baselines"]["alphabetical"]["ac@1"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        summarise_rca([])
