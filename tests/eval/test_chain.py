"""The role chain on labelled cases: the series path, `sreagent eval`, recorded runs that replay.

Toy datasets are built here in the sreagent-cases/1 layout with seeded noise and a fault of
known shape, so what the chain must find is known by construction; one real Nezha case and
one real NAB series check the shared datasets end to end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from sreagent.artifacts import AnomalyFinding, ArtifactKind, RootCauseHypothesis
from sreagent.cli import main
from sreagent.errors import BadInput
from sreagent.eval import load_dataset
from sreagent.eval.chain import (
    CaseRunner,
    alarm_spans,
    chain_config,
    chain_detection,
    chain_rca,
    culprit_run_window,
    evaluate,
)
from sreagent.evidence import EvidencePackage
from sreagent.importers import import_path
from sreagent.replay import Replayer, RunInputs, package_views
from sreagent.roles import _series

T0 = datetime(2022, 8, 22, 3, 0, tzinfo=UTC)
DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
SCHEMA: dict[str, pl.DataType] = {"ts": pl.Datetime("ms", "UTC"), "entity": pl.String(),
                                  "metric": pl.String(), "value": pl.Float64()}

CART = "cart-5f6585d649-fnmft"
FRONT = "front-579b9bff58-t2dbm"
PAY = "pay-9cdb6588f-554sm"


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def frame(rows: list[tuple[datetime, str, str, float]]) -> pl.DataFrame:
    ts, entity, metric, value = zip(*rows, strict=True)
    return pl.DataFrame({"ts": list(ts), "entity": list(entity), "metric": list(metric),
                         "value": list(value)}, schema=SCHEMA).sort("ts", "entity", "metric")


def write_case(root: Path, dataset: str, case_id: str, task: str, labels: dict[str, Any],
               metrics: pl.DataFrame, baseline: pl.DataFrame | None = None) -> Path:
    case_dir = root / dataset / "cases" / case_id
    case_dir.mkdir(parents=True)
    start, end = metrics["ts"].min(), metrics["ts"].max()
    assert isinstance(start, datetime) and isinstance(end, datetime)
    (case_dir / "case.json").write_text(json.dumps({
        "format": "sreagent-cases/1", "dataset": dataset, "case_id": case_id, "task": task,
        "window": {"start": iso(start), "end": iso(end)}, "labels": labels,
        "source": {"repo": "test/toy", "commit": "0" * 40, "path": "generated"}}))
    metrics.write_parquet(case_dir / "metrics.parquet")
    if baseline is not None:
        baseline.write_parquet(case_dir / "baseline.parquet")
    return case_dir


def microservices(seed: int, fault: str, minutes: int = 40, inject: int = 30) -> pl.DataFrame:
    """Three pods, two call edges and an SLO; at minute ``inject`` a fault of one kind.

    ``cpu``: cart's CPU triples and its serving latency rises; every caller's client latency
    rises even more (the symptom upstream). ``net``: calls into pay get slower as the caller
    sees them while pay's own serving latency stays flat (delay on pay's network). ``code``:
    only the SLO moves (a code-level fault no pod metric shows). ``weak``: cart's CPU rises by
    a quarter, about 5 robust z (its scale is floored at 5 % of the median), below ``z_open``,
    and nothing else moves.
    """
    rng = np.random.default_rng(seed)
    rows: list[tuple[datetime, str, str, float]] = []

    def noisy(level: float) -> float:
        return float(level * (1 + 0.02 * rng.standard_normal()))

    for i in range(minutes):
        t = T0 + timedelta(minutes=i)
        after = i >= inject
        cpu_fault = after and fault == "cpu"
        net_fault = after and fault == "net"
        for pod, cpu in ((CART, 200.0), (FRONT, 300.0), (PAY, 100.0)):
            load = 3.0 if cpu_fault and pod == CART else 1.0
            if after and fault == "weak" and pod == CART:
                load = 1.25
            rows.append((t, pod, "cpu_usage_millicores", noisy(cpu * load)))
            latency = 0.02 * (2.0 if cpu_fault and pod == CART else 1.0)
            rows.append((t, pod, "server_latency_p90_seconds", noisy(latency)))
            client = 0.05 * (4.0 if (cpu_fault or net_fault) and pod == FRONT else 1.0)
            rows.append((t, pod, "client_latency_p90_seconds", noisy(client)))
            rows.append((t, pod, "network_receive_bytes", noisy(5e4)))
        for callee, slow in ((CART.split("-")[0], cpu_fault), (PAY.split("-")[0], net_fault)):
            edge = f"edge/front->{callee}"
            rows.append((t, edge, "client_latency_p50_seconds",
                         noisy(0.01 * (5.0 if slow else 1.0))))
            rows.append((t, edge, "server_latency_p50_seconds",
                         noisy(0.008 * (1.5 if slow and fault == "cpu" else 1.0))))
        rows.append((t, "slo/front", "latency_p90_seconds",
                     noisy(0.1 * (3.0 if after and fault not in ("none", "weak") else 1.0))))
    return frame(rows)


def rca_labels(pod: str, fault_type: str, inject: datetime) -> dict[str, Any]:
    return {"root_cause_entity": pod, "root_cause_service": pod.split("-")[0],
            "fault_type": fault_type, "inject_time": iso(inject),
            "metric_observable": fault_type != "exception"}


@pytest.fixture(scope="module")
def rca_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    inject = T0 + timedelta(minutes=30)
    write_case(root, "toymesh", "c1", "rca", rca_labels(CART, "cpu_contention", inject),
               microservices(1, "cpu"))
    write_case(root, "toymesh", "c2", "rca", rca_labels(PAY, "network_delay", inject),
               microservices(2, "net"))
    write_case(root, "toymesh", "c3", "rca", rca_labels(PAY, "exception", inject),
               microservices(3, "code"))
    return root / "toymesh"


def machine(seed: int, minutes: int, start: datetime, shift_at: tuple[int, int] | None,
            entity: str = "srv") -> pl.DataFrame:
    """Four anonymous metrics of one server; ``m02`` and ``m03`` jump by 20 sigma inside
    ``shift_at`` (minute indices, half-open)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(minutes):
        t = start + timedelta(minutes=i)
        for j, name in enumerate(("m01", "m02", "m03", "m04")):
            value = 10.0 * (j + 1) + rng.standard_normal()
            if shift_at and shift_at[0] <= i < shift_at[1] and name in ("m02", "m03"):
                value += 20.0
            rows.append((t, entity, name, float(value)))
    return frame(rows)


@pytest.fixture(scope="module")
def detection_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    train_start = T0
    test_start = T0 + timedelta(minutes=1200)
    fault = (test_start + timedelta(minutes=250), test_start + timedelta(minutes=259))
    write_case(
        root, "toyservers", "srv", "detection",
        {"anomaly_windows": [[iso(fault[0]), iso(fault[1])]],
         "culprits": [{"start": iso(fault[0]), "end": iso(fault[1]),
                       "metrics": ["m02", "m03"]}]},
        machine(5, 400, test_start, (250, 260)),
        baseline=machine(4, 1200, train_start, None))
    return root / "toyservers"


# --- the series path ----------------------------------------------------------------------


def _imported_view(case_dir: Path, out: Path, split: datetime) -> tuple[Any, Any, Any]:
    result = import_path(case_dir, out, fmt="case")[0]
    package = EvidencePackage(result.package)
    start, end = package.manifest.window_start_ns, package.manifest.window_end_ns
    split_ns = int(split.timestamp()) * 10**9
    inputs = RunInputs(run_id="t", host=package.table("samples").column("host")[0].as_py(),
                       window=(start, end), chain=chain_config(start, split_ns, end))
    view, _ = package_views(package, inputs)
    return package, inputs, view


def test_imported_pods_take_the_series_path_and_collector_windows_do_not(
        rca_dataset: Path, tmp_path: Path) -> None:
    _, _, view = _imported_view(rca_dataset / "cases" / "c1", tmp_path / "p",
                                T0 + timedelta(minutes=30))
    assert _series.applies(view)
    golden = Path(__file__).resolve().parents[2] / "replays" / "01_cpu_saturation_runaway"
    package = EvidencePackage(golden)
    inputs = RunInputs.from_config(package.config)
    recorded_view, _ = package_views(package, inputs)
    assert not _series.applies(recorded_view)


def test_no_scenario_of_the_library_takes_the_series_path() -> None:
    # The goldens in replays/ are recordings of these scenarios: the hook must leave every one
    # of them to the host detectors, so their artifacts cannot change.
    from sreagent.runtime import EvidenceView
    from sreagent.scenarios import generate, load_all

    definitions = load_all()
    assert len(definitions) >= 30
    for definition in definitions:
        coarse = definition.model_validate({**definition.model_dump(), "resolution_s": 60})
        view = EvidenceView.from_frames(generate(coarse).frames)
        assert not _series.applies(view), definition


def test_imported_host_metrics_stay_with_the_host_detectors(tmp_path: Path) -> None:
    rows = [(T0 + timedelta(minutes=i), "host", "cpu_utilisation_ratio", 0.2) for i in range(30)]
    case_dir = write_case(tmp_path, "hosty", "h1", "detection", {"anomaly_windows": []},
                          frame(rows))
    _, _, view = _imported_view(case_dir, tmp_path / "p", T0 + timedelta(minutes=10))
    assert not _series.applies(view)


def test_service_of_strips_replicaset_hash_and_ordinal() -> None:
    assert _series.service_of("frontend-579b9bff58-t2dbm") == "frontend"
    assert _series.service_of("ts-food-service-f5756978c-k8vq2") == "ts-food-service"
    assert _series.service_of("redis-cart-0") == "redis-cart"
    assert _series.service_of("node/n01") == "node/n01"


def test_alarm_runs_need_persistence_and_join_across_short_gaps() -> None:
    hot = np.array([0, 1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1], dtype=bool)
    assert _series.find_alarm_runs(hot, 2) == ((3, 9), (12, 14))
    assert _series.find_alarm_runs(hot, 1) == ((1, 2), (3, 5), (6, 9), (12, 14))


def test_cpu_fault_blames_the_pod_not_its_slower_caller(rca_dataset: Path,
                                                        tmp_path: Path) -> None:
    dataset = load_dataset(rca_dataset)
    result = chain_rca(dataset.cases[0], tmp_path)
    assert result.services[0] == "cart" and result.entities[0] == CART
    package = EvidencePackage(tmp_path / "runs" / "c1")
    hyp = next(a for a in package.artifacts if a.kind == ArtifactKind.ROOT_CAUSE_HYPOTHESIS)
    assert isinstance(hyp.payload, RootCauseHypothesis)
    top = hyp.payload.hypotheses[0]
    # The features behind the ranking are in the artifact, CPU dominating.
    assert top.features["cpu"] > 1.0 and top.features["z:cpu_usage_millicores"] > 6.0
    front = next(h for h in hyp.payload.hypotheses if h.entity == FRONT)
    assert "z:client_latency_p90_seconds" in front.features and "cpu" in front.features
    assert top.score > front.score


def test_network_delay_blames_the_callee_of_the_slow_edge(rca_dataset: Path,
                                                          tmp_path: Path) -> None:
    result = chain_rca(load_dataset(rca_dataset).cases[1], tmp_path)
    assert result.services[0] == "pay"


def test_a_fault_metrics_cannot_see_blames_no_slo(rca_dataset: Path,
                                                   tmp_path: Path) -> None:
    case = load_dataset(rca_dataset).cases[2]
    # Only the SLO moves (a code-level fault): the handed-over alarm opened the incident, the
    # SLO's alarm run is a finding of it, and a symptom is never blamed.
    result = chain_rca(case, tmp_path)
    package = EvidencePackage(tmp_path / "runs" / "c3")
    finding = next(a for a in package.artifacts if a.kind == ArtifactKind.ANOMALY_FINDING)
    assert isinstance(finding.payload, AnomalyFinding)
    assert [f.detector for f in finding.payload.findings] == ["external_alert", "series_zscore"]
    assert finding.payload.findings[1].entity == "slo/front"
    assert finding.payload.incident is not None
    assert finding.payload.incident.fingerprint == "alert:labelled_alarm"
    assert "slo/front" not in result.entities


# --- incidents opened by an external alert ------------------------------------------------


@pytest.fixture(scope="module")
def weak_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    write_case(root, "toymesh", "w1", "rca",
               rca_labels(CART, "cpu_consumed", T0 + timedelta(minutes=30)),
               microservices(7, "weak"))
    return root / "toymesh"


def _weak_run(weak_case: Path, work: Path, alert: bool, alert_offset_s: int = 0) -> Any:
    case = load_dataset(weak_case).cases[0]
    runner = CaseRunner.open(case, work)
    start = int(case.spec.window.start.timestamp()) * 10**9
    end = int(case.spec.window.end.timestamp()) * 10**9
    split = start + 30 * 60 * 10**9
    return runner.run("w1", start, split, end,
                      alert=(split + alert_offset_s * 10**9, "labelled_alarm") if alert
                      else None)


def test_an_alert_opens_the_incident_its_own_detectors_did_not(weak_case: Path,
                                                               tmp_path: Path) -> None:
    without = _weak_run(weak_case, tmp_path / "a", alert=False)
    finding = without.of_kind(ArtifactKind.ANOMALY_FINDING)
    assert finding is not None and isinstance(finding.payload, AnomalyFinding)
    # Cart's CPU stays below z_open: no alarm run, no incident, nothing ranked.
    assert finding.payload.incident is None and alarm_spans(without) == []
    assert without.of_kind(ArtifactKind.ROOT_CAUSE_HYPOTHESIS) is None  # the chain stopped

    with_alert = _weak_run(weak_case, tmp_path / "b", alert=True)
    finding = with_alert.of_kind(ArtifactKind.ANOMALY_FINDING)
    assert finding is not None and isinstance(finding.payload, AnomalyFinding)
    assert finding.payload.incident is not None
    assert finding.payload.incident.state == "opened"
    assert finding.payload.findings[0].detector == "external_alert"
    # Its own detection is unchanged by the alert: still no alarm run.
    assert alarm_spans(with_alert) == []
    hyp = with_alert.of_kind(ArtifactKind.ROOT_CAUSE_HYPOTHESIS)
    assert hyp is not None and isinstance(hyp.payload, RootCauseHypothesis)
    top = hyp.payload.hypotheses[0]
    assert top.entity == CART and 4.0 < top.features["z:cpu_usage_millicores"] < 6.0
    # The alert is an event of the recorded package: the run replays identically from it.
    package = EvidencePackage(tmp_path / "b" / "runs" / "w1")
    assert package.table("events").column("kind").to_pylist() == ["alert"]
    replay = Replayer().replay(tmp_path / "b" / "runs" / "w1")
    assert replay.identical, replay.first_divergence


def test_an_alert_inside_the_baseline_part_opens_nothing(weak_case: Path,
                                                        tmp_path: Path) -> None:
    # Ten minutes before the baseline ends: the chain's own baseline calls that normal.
    result = _weak_run(weak_case, tmp_path, alert=True, alert_offset_s=-600)
    finding = result.of_kind(ArtifactKind.ANOMALY_FINDING)
    assert finding is not None and isinstance(finding.payload, AnomalyFinding)
    assert finding.payload.incident is None and finding.payload.findings == []
    assert result.of_kind(ArtifactKind.ROOT_CAUSE_HYPOTHESIS) is None


def test_an_alert_batch_is_a_valid_contract_batch() -> None:
    from sreagent.importers import alert_tables

    tables = alert_tables(host="shop", ts_ns=int(T0.timestamp()) * 10**9,
                          name="HighLatency", entity="slo/front", severity="critical")
    (event,) = tables["events"].to_pylist()
    assert (event["kind"], event["entity"], event["severity"]) == ("alert", "slo/front",
                                                                   "critical")
    assert dict(event["attributes"]) == {"alertname": "HighLatency"}
    (batch,) = tables["batches"].to_pylist()
    assert batch["event_count"] == 1 and batch["capabilities"][0]["source"] == "import:alert"
    assert tables["samples"].num_rows == 0
    with pytest.raises(ValueError):  # the batch contract's own validation (pydantic)
        alert_tables(host="shop", ts_ns=0, name="x", severity="fatal")  # type: ignore[arg-type]


def test_the_incident_onset_follows_the_alert_or_the_run_it_belongs_to() -> None:
    grid = np.arange(100, dtype=np.int64)

    def onset(runs: tuple[tuple[int, int], ...], alert_index: int | None) -> int | None:
        analysis = _series.SeriesAnalysis(
            base_end_ns=9, grid=grid, scores=(), sample_score=np.zeros(100), threshold=6.0,
            alarm_runs=runs, alert=None, alert_index=alert_index)
        return _series.incident_onset(analysis, close_samples=20)

    assert onset(((30, 35), (50, 60)), None) == 30  # no alert: the first run
    assert onset((), None) is None
    assert onset((), 10) == 10  # the alert alone
    assert onset(((5, 12), (50, 60)), 10) == 5  # a run already going when it came
    assert onset(((25, 28),), 10) == 25  # a run within close_samples after it
    assert onset(((31, 40),), 10) == 10  # too late to be the alert's
    assert onset(((2, 4), (31, 40)), 10) == 10


def test_culprit_runs_learn_from_the_training_part_without_the_test_part() -> None:
    minute = 60 * 10**9
    train_start, last_train = 0, 999 * minute
    seg_start, seg_end = 1200 * minute, 1209 * minute
    start, split, end, spans = culprit_run_window(seg_start, seg_end, minute, train_start,
                                                  last_train)
    assert (start, end) == (train_start, seg_end) and last_train < split < 1000 * minute
    assert spans == [(train_start, last_train), (seg_start, seg_end)]
    chain_config(start, split, end)  # the whole training part fits baseline_fraction
    # A segment right after a long training part: as much of it as the bound allows.
    start, split, end, spans = culprit_run_window(1002 * minute, 1004 * minute, minute,
                                                  train_start, last_train)
    assert 0 < start < last_train and spans[0] == (start, last_train)
    config = chain_config(start, split, end)
    assert config.detection.baseline_seconds == (split - start) / 1e9
    # No training part: the pre-window.
    start, split, end, spans = culprit_run_window(seg_start, seg_end, minute, 0, None)
    assert split - start == 4 * 60 * minute and spans == [(start, end)]


def test_recorded_eval_runs_replay_identically(rca_dataset: Path, tmp_path: Path) -> None:
    chain_rca(load_dataset(rca_dataset).cases[1], tmp_path)
    replay = Replayer().replay(tmp_path / "runs" / "c2")
    assert replay.identical, replay.first_divergence
    assert len(replay.recorded) >= 3  # observation, finding, hypothesis at least


def test_the_series_path_is_deterministic(rca_dataset: Path, tmp_path: Path) -> None:
    case = load_dataset(rca_dataset).cases[0]
    first = CaseRunner.open(case, tmp_path / "a")
    second = CaseRunner.open(case, tmp_path / "b")
    start = int(case.spec.window.start.timestamp()) * 10**9
    end = int(case.spec.window.end.timestamp()) * 10**9
    split = start + 30 * 60 * 10**9
    a = first.run("x", start, split, end)
    b = second.run("x", start, split, end)
    assert [x.artifact_id for x in a.artifacts] == [x.artifact_id for x in b.artifacts]


def test_detection_alarms_inside_the_fault_and_ranks_its_culprits(
        detection_dataset: Path, tmp_path: Path) -> None:
    case = load_dataset(detection_dataset).cases[0]
    result = chain_detection(case, tmp_path)
    alarmed = result.timeline[result.alarms]
    window = case.spec.detection.anomaly_windows[0]
    assert len(alarmed) == 1  # one run, paged once; nothing in the 390 normal minutes
    assert np.datetime64(window[0].replace(tzinfo=None)) <= alarmed[0] <= np.datetime64(
        window[1].replace(tzinfo=None))
    assert set(result.culprits[0][:2]) == {"m02", "m03"}
    # The culprit segment was its own recorded run, which replays too: the training part as
    # its baseline, the segment and the alert at its start; none of the test part before it.
    segment_run = EvidencePackage(tmp_path / "runs" / "srv-segment-000")
    times = np.array(segment_run.table("samples").column("ts_ns").to_pylist())
    last_train = int((T0 + timedelta(minutes=1199)).timestamp()) * 10**9
    seg_start = int(window[0].timestamp()) * 10**9
    assert times.min() == int(T0.timestamp()) * 10**9  # all 1200 training minutes fit
    assert not ((times > last_train) & (times < seg_start)).any()
    assert segment_run.table("events").column("ts_ns").to_pylist() == [seg_start]
    assert Replayer().replay(tmp_path / "runs" / "srv-segment-000").identical


def test_chain_config_puts_the_baseline_end_at_the_split() -> None:
    config = chain_config(0, 30 * 10**9, 40 * 10**9)
    assert config.detection.baseline_seconds == 30.0
    with pytest.raises(ValueError, match="does not fit"):
        chain_config(0, 39 * 10**9, 40 * 10**9)


# --- the report and the command -------------------------------------------------------------


def test_rca_report_has_the_chain_beside_the_baselines(rca_dataset: Path,
                                                       tmp_path: Path) -> None:
    steps: list[str] = []
    out = evaluate(rca_dataset, "rca", work=tmp_path, progress=steps.append)
    assert out["cases"] == 3 and out["task"] == "rca"
    assert out["metrics"]["cases"] == 3
    assert out["subsets"]["metric_observable"]["cases"] == 2
    assert out["subsets"]["metric_observable"]["ac@1"] == 1.0
    assert set(out["by_fault_type"]) == {"cpu_contention", "network_delay", "exception"}
    assert set(out["baselines"]) == {"baro", "nsigma", "baro_e2e"}
    assert "ac@3" in out["baselines"]["baro"]
    assert "chain_baseline" in out["protocol"]
    assert steps[:3] == ["chain c1", "chain c2", "chain c3"] and len(steps) == 12


def test_detection_report_keys(detection_dataset: Path, tmp_path: Path) -> None:
    out = evaluate(detection_dataset, "detection", work=tmp_path)
    m = out["metrics"]
    assert m["recall"] == 1.0 and m["precision"] == 1.0 and m["hitrate@100"] == 1.0
    for key in ("f1_point", "f1_point_adjusted", "nab_standard", "nab_low_fp", "nab_low_fn",
                "hitrate@150", "delay_median_s"):
        assert key in m
    assert "subsets" not in out and "by_fault_type" not in out
    assert set(out["baselines"]) == {"baro", "nsigma", "windowed_gaussian"}


def test_a_task_that_does_not_match_and_unknown_cases_are_refused(rca_dataset: Path,
                                                                  tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="holds rca cases"):
        evaluate(rca_dataset, "detection", work=tmp_path)
    with pytest.raises(BadInput, match="no such cases"):
        evaluate(rca_dataset, "rca", work=tmp_path, case_ids=["nope"])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sreagent", *args], capture_output=True,
                          text=True, timeout=600)


def test_eval_command_writes_the_json_report(rca_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = run_cli("eval", str(rca_dataset), "--task", "rca", "--json", str(out),
                   "--case", "c1", "--work", str(tmp_path / "work"))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["dataset"] == "toymesh" and report["cases"] == 1
    assert report["metrics"]["ac@1"] == 1.0
    assert (tmp_path / "work" / "runs" / "c1" / "manifest.json").exists()


def test_eval_command_names_the_malformed_case(rca_dataset: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "toymesh"  # the folder's name must match the cases' dataset field
    shutil.copytree(rca_dataset, broken)
    doc = json.loads((broken / "cases" / "c2" / "case.json").read_text())
    doc["labels"]["inject_time"] = "2022-08-22T03:30:00"  # no time zone
    (broken / "cases" / "c2" / "case.json").write_text(json.dumps(doc))
    assert main(["eval", str(broken), "--task", "rca", "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "c2" in err and "inject_time" in err
    assert not (tmp_path / "w").exists()  # refused before anything ran
    assert main(["eval", str(rca_dataset), "--task", "forecast"]) == 2
    assert "forecast" in capsys.readouterr().err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    assert main(["eval", str(rca_dataset), "--task", "rca", "--work", str(tmp_path / "used")]) == 2
    assert "--work" in capsys.readouterr().err


# --- the shared datasets ------------------------------------------------------------------


def test_a_real_nezha_cpu_case_is_ranked_first(tmp_path: Path) -> None:
    if not (DATASETS / "nezha").is_dir():
        pytest.fail(f"the shared datasets are missing: {DATASETS}")
    out = evaluate(DATASETS / "nezha", "rca", work=tmp_path, case_ids=["ob-2022-08-22-06"])
    # cartservice, CPU contention: its own CPU and serving latency move first.
    assert out["metrics"]["ac@1"] == 1.0
    assert out["by_fault_type"] == {"cpu_contention": out["metrics"]}


@pytest.mark.slow
def test_a_real_nab_series_is_evaluated(tmp_path: Path) -> None:
    out = evaluate(DATASETS / "nab", "detection", work=tmp_path,
                   case_ids=["ec2_cpu_utilization_24ae8d"])
    assert out["cases"] == 1 and "nab_standard" in out["metrics"]
    assert "baro" not in out["baselines"]  # no training part to scale by
    assert out["metrics"]["windows"] == out["baselines"]["windowed_gaussian"]["windows"]
