"""Loading sreagent-cases/1 directories: every real dataset validates; malformed cases are
refused with an error that names the case file and the field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sreagent.errors import BadInput, SchemaVersionError
from sreagent.eval import baselines as bl
from sreagent.eval.cases import load_case, load_dataset

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO.parent / "shared" / "datasets"


def dataset_dirs() -> list[Path]:
    if not DATASETS.is_dir():
        return []
    return sorted(p for p in DATASETS.iterdir() if (p / "cases").is_dir())


@pytest.fixture
def datasets_root() -> Path:
    if not DATASETS.is_dir():
        pytest.skip("../shared/datasets is not beside the checkout")
    return DATASETS


def test_every_shared_dataset_with_cases_is_found(datasets_root: Path) -> None:
    names = {p.name for p in dataset_dirs()}
    # the issue names these four as the labelled datasets; more may come and are tested too
    assert {"nezha", "nab", "smd", "asd"} <= names


@pytest.mark.parametrize("root", dataset_dirs(), ids=lambda p: p.name)
def test_every_case_json_of_a_shared_dataset_validates(root: Path) -> None:
    dataset = load_dataset(root)
    on_disk = sorted(p.name for p in (root / "cases").iterdir() if p.is_dir())
    assert [c.case_id for c in dataset] == on_disk
    for case in dataset:
        spec = case.spec
        assert spec.dataset == root.name
        if spec.task == "rca":
            labels = spec.rca
            # the README: the service is the pod name without ReplicaSet hash and pod suffix
            assert bl.pod_service(labels.root_cause_entity) == labels.root_cause_service
        else:
            labels_d = spec.detection
            windows = list(labels_d.anomaly_windows)
            assert windows == sorted(windows)
            for culprit in labels_d.culprits or ():
                assert spec.window.contains(culprit.start) and spec.window.contains(culprit.end)


def test_rca_root_cause_entities_appear_in_their_metrics(datasets_root: Path) -> None:
    dataset = load_dataset(datasets_root / "nezha")
    for case in dataset.cases[::5]:  # every fifth case keeps this quick
        entities = set(case.metrics()["entity"].unique().to_list())
        assert case.spec.rca.root_cause_entity in entities, case.case_id


def test_detection_metrics_lie_inside_the_case_window(datasets_root: Path) -> None:
    case = load_dataset(datasets_root / "asd").cases[0]
    frame = case.metrics()
    assert case.spec.window.contains(frame["ts"].min())  # type: ignore[arg-type]
    assert case.spec.window.contains(frame["ts"].max())  # type: ignore[arg-type]
    baseline = case.baseline()
    assert baseline is not None and baseline["ts"].max() < frame["ts"].min()  # type: ignore[operator]


# --- malformed cases --------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "format": "sreagent-cases/1",
    "dataset": "toy",
    "case_id": "c1",
    "task": "detection",
    "window": {"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T01:00:00Z"},
    "labels": {
        "anomaly_windows": [["2020-01-01T00:10:00Z", "2020-01-01T00:20:00Z"]],
        "culprits": [
            {"start": "2020-01-01T00:10:00Z", "end": "2020-01-01T00:20:00Z", "metrics": ["m01"]}
        ],
    },
    "source": {"repo": "o/r", "commit": "abc", "path": "p"},
}

RCA_LABELS: dict[str, Any] = {
    "root_cause_entity": "cart-579f59597d-wc2lz",
    "root_cause_service": "cart",
    "fault_type": "cpu_contention",
    "inject_time": "2020-01-01T00:30:00Z",
    "metric_observable": True,
    "inner_label": None,
}


def write_case(root: Path, document: dict[str, Any] | str, case_id: str = "c1") -> Path:
    case_dir = root / "toy" / "cases" / case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    text = document if isinstance(document, str) else json.dumps(document)
    (case_dir / "case.json").write_text(text)
    frame = pl.DataFrame(
        {
            "ts": pl.Series([1577836800000, 1577836860000]).cast(pl.Datetime("ms", "UTC")),
            "entity": ["toy", "toy"],
            "metric": ["m01", "m01"],
            "value": [0.5, 0.7],
        }
    )
    frame.write_parquet(case_dir / "metrics.parquet")
    return case_dir


def test_a_good_toy_case_loads(tmp_path: Path) -> None:
    write_case(tmp_path, GOOD)
    dataset = load_dataset(tmp_path / "toy")
    assert len(dataset) == 1 and dataset.task == "detection"
    assert dataset.cases[0].spec.detection.culprits[0].metrics == ("m01",)  # type: ignore[index]
    assert dataset.cases[0].metrics().height == 2
    assert dataset.cases[0].baseline() is None


def test_a_good_rca_case_loads(tmp_path: Path) -> None:
    write_case(tmp_path, {**GOOD, "task": "rca", "labels": RCA_LABELS})
    spec = load_dataset(tmp_path / "toy").cases[0].spec
    assert spec.rca.root_cause_service == "cart"
    with pytest.raises(TypeError):
        _ = spec.detection


def _mutated(path: str, value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(GOOD))
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        (_mutated("window.start", "2020-01-01T00:00:00"), "window.start", "UTC"),
        (_mutated("window.end", "2020-01-01T01:00:00+02:00"), "window.end", "UTC"),
        (_mutated("task", "forecast"), "task", "rca"),
        (_mutated("surprise", 1), "surprise", "Extra inputs"),
        (_mutated("source.commit", _DELETE), "source.commit", "required"),
        (
            _mutated("labels.anomaly_windows", [["2020-01-01T00:20:00Z", "2020-01-01T00:10:00Z"]]),
            "labels.anomaly_windows[0]",
            "ends before",
        ),
        (
            _mutated(
                "labels.culprits",
                [{"start": "2020-01-01T00:10:00Z", "end": "2020-01-01T00:20:00Z", "metrics": []}],
            ),
            "labels.culprits[0].metrics",
            "at least 1",
        ),
        (
            _mutated("labels.anomaly_windows", [["2020-01-01T00:10:00Z", "2020-01-02T00:20:00Z"]]),
            None,
            "outside the case window",
        ),
        (
            {**GOOD, "task": "rca", "labels": {**RCA_LABELS, "fault_type": None}},
            "labels.fault_type",
            "string",
        ),
        (
            {
                **GOOD,
                "task": "rca",
                "labels": {**RCA_LABELS, "inject_time": "2021-01-01T00:00:00Z"},
            },
            None,
            "inject_time lies outside",
        ),
        ({**GOOD, "task": "rca"}, "labels.root_cause_entity", "required"),
    ],
)
def test_malformed_case_is_refused_naming_case_and_field(
    tmp_path: Path, document: dict[str, Any], field: str | None, message: str
) -> None:
    write_case(tmp_path, document)
    with pytest.raises(BadInput) as caught:
        load_dataset(tmp_path / "toy")
    err = caught.value
    assert err.path is not None and err.path.endswith("cases/c1/case.json")
    assert err.field == field
    assert message in err.message
    assert "c1/case.json" in str(err)


def test_unknown_format_is_a_schema_version_error(tmp_path: Path) -> None:
    write_case(tmp_path, {**GOOD, "format": "sreagent-cases/2"})
    with pytest.raises(SchemaVersionError, match="sreagent-cases/2"):
        load_dataset(tmp_path / "toy")


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    write_case(tmp_path, "{not json")
    with pytest.raises(BadInput, match="not valid JSON") as caught:
        load_dataset(tmp_path / "toy")
    assert caught.value.path is not None and caught.value.path.endswith("c1/case.json")


def test_case_id_must_match_its_directory(tmp_path: Path) -> None:
    write_case(tmp_path, GOOD, case_id="other")
    with pytest.raises(BadInput, match="directory name") as caught:
        load_dataset(tmp_path / "toy")
    assert caught.value.field == "case_id"


def test_dataset_name_must_match_its_directory(tmp_path: Path) -> None:
    write_case(tmp_path, {**GOOD, "dataset": "elsewhere"})
    with pytest.raises(BadInput, match="dataset directory") as caught:
        load_dataset(tmp_path / "toy")
    assert caught.value.field == "dataset"


def test_missing_metrics_and_empty_or_missing_cases_folder(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path, GOOD)
    (case_dir / "metrics.parquet").unlink()
    with pytest.raises(BadInput, match=r"no metrics\.parquet"):
        load_dataset(tmp_path / "toy")
    shutil.rmtree(tmp_path / "toy" / "cases" / "c1")
    with pytest.raises(BadInput, match="no case directories"):
        load_dataset(tmp_path / "toy")
    with pytest.raises(BadInput, match="no cases/ folder"):
        load_dataset(tmp_path)


def test_mixed_tasks_are_refused(tmp_path: Path) -> None:
    write_case(tmp_path, GOOD)
    write_case(tmp_path, {**GOOD, "case_id": "c2", "task": "rca", "labels": RCA_LABELS}, "c2")
    with pytest.raises(BadInput, match="mix tasks"):
        load_dataset(tmp_path / "toy")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"ts": [1], "entity": ["x"], "value": [1.0]}), "columns are"),
        (
            pl.DataFrame({"ts": [1], "entity": ["x"], "metric": ["m"], "value": [1.0]}),
            "column ts is",
        ),
        (
            pl.DataFrame(
                {
                    "ts": pl.Series([0, 0]).cast(pl.Datetime("ms", "UTC")),
                    "entity": ["x", "x"],
                    "metric": ["m", "m"],
                    "value": [1.0, 2.0],
                }
            ),
            "repeats",
        ),
        (
            pl.DataFrame(
                {
                    "ts": pl.Series([0]).cast(pl.Datetime("ms", "UTC")),
                    "entity": ["x"],
                    "metric": ["m"],
                    "value": [float("nan")],
                }
            ),
            "non-finite",
        ),
    ],
)
def test_bad_metrics_parquet_is_refused_naming_the_case(
    tmp_path: Path, frame: pl.DataFrame, message: str
) -> None:
    case_dir = write_case(tmp_path, GOOD)
    frame.write_parquet(case_dir / "metrics.parquet")
    case = load_case(case_dir)
    with pytest.raises(BadInput, match=message) as caught:
        case.metrics()
    assert "case c1" in caught.value.message
    assert caught.value.path is not None and caught.value.path.endswith("metrics.parquet")
