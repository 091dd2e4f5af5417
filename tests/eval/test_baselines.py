"""Baselines: the statistics on hand-checked inputs, the NAB detector against a literal
transcription of NAB's loop, and honest runs on a few real cases."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sreagent.errors import BadInput
from sreagent.eval import baselines as bl
from sreagent.eval import evaluate as ev
from sreagent.eval import scoring as sc
from sreagent.eval.cases import load_dataset

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture
def datasets() -> Path:
    if not DATASETS.is_dir():
        pytest.skip("../shared/datasets is not beside the checkout")
    return DATASETS


# --- statistics ---------------------------------------------------------------------------------


def test_robust_scaler_uses_median_and_iqr() -> None:
    normal = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])
    fit = bl.fit_scaler(normal, "robust")
    # median 3; quartiles (linear interpolation) 2 and 4 -> IQR 2; the outlier 100 moves nothing
    assert fit.centre.tolist() == [3.0] and fit.scale.tolist() == [2.0]
    assert fit.z(np.array([[7.0]])).tolist() == [[2.0]]
    standard = bl.fit_scaler(normal, "standard")
    assert standard.centre[0] == pytest.approx(22.0)  # the mean is dragged by the outlier


def test_zero_or_noise_scale_becomes_one_and_missing_columns_stay_nan() -> None:
    normal = np.array([[5.0, 1.0, np.nan], [5.0, 1.0 + 1e-17, np.nan], [5.0, 1.0, np.nan]])
    fit = bl.fit_scaler(normal, "robust")
    assert fit.scale[0] == 1.0 and fit.scale[1] == 1.0
    assert math.isnan(fit.centre[2])


def naive_windowed_gaussian(values: list[float], window: int, step: int) -> list[float]:
    """NAB's WindowedGaussianDetector.handleRecord, transcribed literally (returns |z|)."""
    data: list[float] = []
    buffer: list[float] = []
    mean, std = 0.0, 1.0
    out = []
    for x in values:
        out.append(abs(x - mean) / std if data else 0.0)
        if len(data) < window:
            data.append(x)
            mean, std = float(np.mean(data)), float(np.std(data)) or 0.000001
        else:
            buffer.append(x)
            if len(buffer) == step:
                data = data[step:] + buffer
                buffer = []
                mean, std = float(np.mean(data)), float(np.std(data)) or 0.000001
    return out


def test_windowed_gaussian_matches_nabs_loop() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(10, 2, 60), [10.0] * 12, rng.normal(30, 5, 40)])
    fast = bl.windowed_gaussian_z(values, window=16, step=5)
    slow = naive_windowed_gaussian(values.tolist(), window=16, step=5)
    assert fast == pytest.approx(slow, rel=1e-9, abs=1e-6)


def test_nab_anomaly_score_is_one_minus_the_gaussian_tail() -> None:
    score = bl.nab_anomaly_score(np.array([0.0, 0.0, 1.6448536269514722, 3.0]))
    assert score[0] == 0.0  # the first value has no statistics
    assert score[1] == pytest.approx(0.5)
    assert score[2] == pytest.approx(0.95)
    assert score[3] == pytest.approx(0.998650, abs=1e-6)


def test_expanding_nsigma_against_a_direct_computation() -> None:
    x = np.array([1.0, 2.0, 4.0, 7.0, 11.0, 2.0])
    z = bl.expanding_nsigma_z(x)
    expected = [0.0, 0.0] + [abs(x[i] - x[:i].mean()) / x[:i].std(ddof=1) for i in range(2, 6)]
    assert z == pytest.approx(expected)


def test_training_threshold_is_a_quantile_of_training_scores() -> None:
    scores = np.arange(1001, dtype=float)
    assert bl.training_threshold(scores, 0.999) == pytest.approx(999.0)
    with pytest.raises(ValueError):
        bl.training_threshold(np.array([np.nan]))


@pytest.mark.parametrize(
    ("entity", "service"),
    [
        ("frontend-579b9bff58-t2dbm", "frontend"),
        ("ts-food-service-f5756978c-k8vqf", "ts-food-service"),
        ("redis-cart-0", "redis-cart"),
        ("node/n01", None),
        ("slo/frontend", None),
        ("edge/frontend->cartservice", None),
        ("standalone", "standalone"),
    ],
)
def test_pod_service(entity: str, service: str | None) -> None:
    assert bl.pod_service(entity) == service


def long_frame(columns: dict[tuple[str, str], list[float]]) -> pl.DataFrame:
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    rows = []
    for (entity, metric), values in columns.items():
        for i, v in enumerate(values):
            rows.append((t0 + timedelta(minutes=i), entity, metric, v))
    return pl.DataFrame(
        rows,
        schema={
            "ts": pl.Datetime("ms", "UTC"),
            "entity": pl.String,
            "metric": pl.String,
            "value": pl.Float64,
        },
        orient="row",
    )


def test_rank_metrics_puts_the_metric_that_rose_after_the_alarm_first() -> None:
    rng = np.random.default_rng(0)
    frame = long_frame(
        {
            ("cart-579f59597d-wc2lz", "cpu"): list(rng.normal(1, 0.1, 20)) + [3.0] * 5,
            ("cart-579f59597d-wc2lz", "mem"): list(rng.normal(5, 0.1, 25)),
            ("shop-7d4f5b99fd-ktwc6", "cpu"): list(rng.normal(1, 0.1, 25)),
            ("shop-7d4f5b99fd-ktwc6", "lat"): list(rng.normal(1, 0.1, 20)) + [0.2] * 5,  # falls
            ("node/n01", "cpu"): list(rng.normal(1, 0.1, 20)) + [50.0] * 5,
        }
    )
    alarm = datetime(2020, 1, 1, 0, 20, tzinfo=UTC)
    ranked = bl.rank_metrics(frame, alarm, entity_filter=bl.is_service_entity)
    assert (ranked[0].entity, ranked[0].metric) == ("cart-579f59597d-wc2lz", "cpu")
    assert all(r.entity != "node/n01" for r in ranked)
    # BARO's score is signed: the falling latency ranks below everything that did not fall
    assert (ranked[-1].entity, ranked[-1].metric) == ("shop-7d4f5b99fd-ktwc6", "lat")
    assert bl.rank_services(ranked) == ["cart", "shop"]


def test_rank_culprits_is_two_sided_and_breaks_ties_by_name() -> None:
    z = np.array([[0.1, 0.2, 0.0], [5.0, 0.3, 0.0], [0.2, 9.0, 0.0]])
    rows = np.array([False, True, True])
    assert bl.rank_culprits(z, ["m01", "m02", "m03"], rows) == ["m02", "m01", "m03"]
    assert bl.rank_culprits(np.zeros((2, 2)), ["b", "a"], np.array([True, True])) == ["a", "b"]


# --- real cases -----------------------------------------------------------------------------------


def test_baro_on_nezha_metric_observable_cases_beats_a_random_ranking(datasets: Path) -> None:
    dataset = load_dataset(datasets / "nezha")
    observable = [c for c in dataset if c.spec.rca.metric_observable][::2]  # 11 of 22 cases
    results = [ev.baseline_rca(c, "baro") for c in observable]
    hits = [
        sc.hit_at_k(r.services, c.spec.rca.root_cause_service, 3)
        for r, c in zip(results, observable, strict=True)
    ]
    # a random ranking of the case's services puts the truth in the top 3 with chance 3/n
    chance = sum(3 / len(r.services) for r in results) / len(results)
    assert all(len(r.services) >= 10 for r in results)  # every pod's service was ranked
    assert sum(hits) / len(hits) > chance
    summary = ev.summarise_rca(results)
    assert summary["metrics"]["cases"] == len(observable)
    assert summary["subsets"]["metric_observable"]["cases"] == len(observable)
    assert sum(b["cases"] for b in summary["by_fault_type"].values()) == len(observable)


def test_detection_baselines_on_an_asd_case_are_sane(datasets: Path) -> None:
    case = load_dataset(datasets / "asd").cases[0]
    for method in ev.DETECTION_BASELINES:
        result = ev.baseline_detection(case, method)
        labels = sc.label_mask(len(result.timeline), result.spans())
        # thresholds come from training data: they alarm on some but far from all test samples
        assert 0 < result.alarms.sum() < 0.2 * len(result.alarms)
        raw = sc.precision_recall_f1(sc.point_counts(result.alarms, labels, adjust=False))
        adjusted = sc.precision_recall_f1(sc.point_counts(result.alarms, labels, adjust=True))
        assert adjusted[2] >= raw[2]  # adjustment only turns misses into hits
        # the alarms concentrate in labelled windows more than chance would put them there
        assert result.alarms[labels].mean() > result.alarms[~labels].mean()
        culprits = case.spec.detection.culprits or ()
        assert len(result.culprits) == len(culprits)
        hr100 = sc.mean_hit_rate(
            [(r, c.metrics) for r, c in zip(result.culprits, culprits, strict=True)], 100
        )
        hr150 = sc.mean_hit_rate(
            [(r, c.metrics) for r, c in zip(result.culprits, culprits, strict=True)], 150
        )
        chance = float(np.mean([len(c.metrics) / 19 for c in culprits]))  # 19 anonymous metrics
        assert hr150 >= hr100 > chance


def test_windowed_gaussian_on_nab_beats_the_null_detector(datasets: Path) -> None:
    dataset = load_dataset(datasets / "nab")
    cases = [c for c in dataset if c.spec.detection.anomaly_windows][:4]
    results = [ev.baseline_detection(c, "windowed_gaussian") for c in cases]
    series = [(np.asarray(r.scores), r.spans()) for r in results]
    best = sc.nab_optimise_threshold(series, sc.NAB_PROFILES["standard"])
    assert 0.0 < best.score < 100.0
    for quantile in (0.5, 0.9, 0.99):
        fixed = float(np.quantile(np.concatenate([s for s, _ in series]), quantile))
        assert (
            sc.nab_corpus_score([(s >= fixed, sp) for s, sp in series], sc.NAB_PROFILES["standard"])
            <= best.score + 1e-9
        )


def test_evaluate_baselines_writes_the_documented_shape(datasets: Path) -> None:
    out = ev.evaluate_baselines(datasets / "asd", "detection")
    json.dumps(out)  # plain JSON
    assert out["dataset"] == "asd" and out["task"] == "detection" and out["cases"] == 6
    assert "metrics" not in out  # no chain results yet: the chain's keys are left out
    assert set(out["baselines"]) == {"baro", "nsigma", "windowed_gaussian"}
    for block in out["baselines"].values():
        for key in (
            "precision",
            "recall",
            "f1",
            "f1_point",
            "f1_point_adjusted",
            "nab_standard",
            "nab_low_fp",
            "nab_low_fn",
            "hitrate@100",
            "hitrate@150",
        ):
            assert isinstance(block[key], float), key
        assert "ac@1" not in block and "subsets" not in block
        assert block["culprit_segments"] == sum(
            len(c.spec.detection.culprits or ()) for c in load_dataset(datasets / "asd")
        )


def test_evaluate_baselines_refuses_the_wrong_task(datasets: Path) -> None:
    with pytest.raises(BadInput, match="holds detection cases, not rca"):
        ev.evaluate_baselines(datasets / "nab", "rca")


def test_report_puts_chain_results_beside_the_baselines(datasets: Path) -> None:
    dataset = load_dataset(datasets / "nezha")
    cases = dataset.cases[:6]
    # a stand-in "method" that ranks services alphabetically, to show how the chain's results fit
    services = tuple(sorted({c.spec.rca.root_cause_service for c in dataset}))
    chain = ev.summarise_rca([ev.RcaResult(c, services) for c in cases])
    baro = ev.summarise_rca([ev.baseline_rca(c, "baro") for c in cases])
    out = ev.report(dataset, "rca", chain=chain, baselines={"baro": baro})
    assert out["metrics"] == chain["metrics"] and "ac@1_entity" not in out["metrics"]
    assert out["baselines"]["baro"]["cases"] == 6
    assert set(out["baselines"]["baro"]) >= {"ac@1", "ac@3", "avg@5", "by_fault_type"}


def test_unknown_baseline_is_refused_by_name(datasets: Path) -> None:
    case = load_dataset(datasets / "asd").cases[0]
    with pytest.raises(BadInput, match="unknown detection baseline 'isolation_forest'"):
        ev.baseline_detection(case, "isolation_forest")
    nezha = load_dataset(datasets / "nezha").cases[0]
    with pytest.raises(BadInput, match="unknown rca baseline"):
        ev.baseline_rca(nezha, "windowed_gaussian")


def test_evaluate_baselines_reports_progress_per_method_and_case(datasets: Path) -> None:
    seen: list[str] = []
    out = ev.evaluate_baselines(
        datasets / "nab", "detection", methods=["nsigma"], progress=seen.append
    )
    assert seen == [f"nsigma {c.case_id}" for c in load_dataset(datasets / "nab")]
    assert set(out["baselines"]) == {"nsigma"}
    assert out["baselines"]["nsigma"]["nab_standard_threshold"] > 0


# --- BARO's BOCPD stage -------------------------------------------------------------------------


def test_bocpd_posterior_columns_are_distributions() -> None:
    rng = np.random.default_rng(5)
    r = bl.bocpd_run_length_posterior(rng.normal(0, 0.1, (25, 2)))
    assert r.shape == (26, 26)
    assert r.sum(axis=0) == pytest.approx(np.ones(26))
    assert np.allclose(np.triu(r, 1)[:, :1], 0)  # before any sample, the run is 0 long
    assert r[0, 0] == 1.0


def test_bocpd_finds_a_mean_shift_in_several_signals() -> None:
    rng = np.random.default_rng(11)
    quiet = rng.normal(0.0, 0.05, (30, 3))
    shifted = rng.normal(0.0, 0.05, (20, 3)) + np.array([1.0, 0.8, 1.2])
    index = bl.bocpd_alarm_index(np.vstack([quiet, shifted]))
    assert index is not None and 28 <= index <= 32


def test_bocpd_needs_enough_samples_to_confirm_a_change() -> None:
    assert bl.bocpd_alarm_index(np.zeros((8, 2))) is None


def test_baro_end_to_end_detects_its_own_alarm_time_on_a_real_case(datasets: Path) -> None:
    case = next(c for c in load_dataset(datasets / "nezha") if c.case_id == "ob-2022-08-22-17")
    alarm = bl.bocpd_alarm_time(case.metrics(), bl.is_sli_entity)
    assert alarm is not None and case.spec.window.contains(alarm)
    result = ev.baseline_rca(case, "baro_e2e")
    assert len(result.services) >= 10  # it ranks every service, from its own split
