"""Importers: tables, Prometheus exports and labelled cases into evidence packages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

from sreagent.errors import BadInput, NonFiniteValue, SchemaVersionError
from sreagent.evidence import EvidencePackage, verify_package
from sreagent.importers import detect_format, import_path

LONG_CSV = """timestamp,entity,metric,value
2026-01-01T00:00:00Z,host,cpu_utilisation_ratio,0.25
2026-01-01T00:00:00Z,disk/sda,disk_await_seconds,0.004
2026-01-01T00:01:00Z,host,cpu_utilisation_ratio,0.95
2026-01-01T00:02:00Z,host,cpu_utilisation_ratio,0.97
"""
T0 = 1_767_225_600 * 10**9


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_long_csv_becomes_one_batch_per_timestamp(tmp_path: Path) -> None:
    source = write(tmp_path / "cpu.csv", LONG_CSV)
    assert detect_format(source) == "long"
    [result] = import_path(source, tmp_path / "pkg", host="node-1")
    assert verify_package(result.package).rows["batches.parquet"] == 3
    package = EvidencePackage(result.package)
    samples = package.table("samples")
    host_cpu = samples.filter(pc.equal(samples.column("entity"), "host"))
    assert host_cpu.column("value").to_pylist() == [0.25, 0.95, 0.97]
    assert host_cpu.column("ts_ns").to_pylist() == [T0, T0 + 60 * 10**9, T0 + 120 * 10**9]
    assert set(samples.column("host").to_pylist()) == {"node-1"}
    batches = package.table("batches")
    assert batches.column("sample_count").to_pylist() == [2, 1, 1]
    assert batches.column("capabilities")[0].as_py()[0]["source"] == "import:long"
    assert package.config["telemetry"] == {"resolution_s": 60.0}


def test_imports_are_deterministic(tmp_path: Path) -> None:
    source = write(tmp_path / "cpu.csv", LONG_CSV)
    one = import_path(source, tmp_path / "one")[0].package
    two = import_path(source, tmp_path / "two")[0].package
    assert (one / "manifest.json").read_bytes() == (two / "manifest.json").read_bytes()


def test_wide_table_takes_one_entity(tmp_path: Path) -> None:
    source = write(tmp_path / "w.csv", "time,cpu_utilisation_ratio,memory_used_ratio\n"
                   "1767225600,0.2,0.5\n1767225660,0.9,\n")
    assert detect_format(source) == "wide"
    [result] = import_path(source, tmp_path / "pkg", entity="cgroup/web")
    samples = EvidencePackage(result.package).table("samples").to_pylist()
    assert [(s["ts_ns"], s["metric"], s["value"]) for s in samples] == [
        (T0, "cpu_utilisation_ratio", 0.2), (T0, "memory_used_ratio", 0.5),
        (T0 + 60 * 10**9, "cpu_utilisation_ratio", 0.9)]
    assert {s["entity"] for s in samples} == {"cgroup/web"}


def prometheus_export(values: list[list[object]]) -> dict[str, object]:
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "node_load1", "instance": "web-1:9100", "job": "node"},
         "values": values},
        {"metric": {"__name__": "node_cpu_seconds_total", "instance": "web-1:9100", "mode": "user"},
         "values": [[1767225600, "12.5"]]},
        {"metric": {"__name__": "node_cpu_seconds_total", "instance": "web-1:9100", "mode": "idle"},
         "values": [[1767225600, "80"]]},
    ]}}


def test_prometheus_export_keeps_labels_and_drops_nan(tmp_path: Path) -> None:
    source = tmp_path / "export.json"
    source.write_text(json.dumps(prometheus_export(
        [[1767225600, "0.5"], [1767225615, "NaN"], [1767225630, "+Inf"], [1767225645, "1.5"]])))
    [result] = import_path(source, tmp_path / "pkg")
    assert result.dropped_non_finite == 2 and result.rows == 4
    samples = EvidencePackage(result.package).table("samples").to_pylist()
    assert {s["entity"] for s in samples} == {"web-1:9100"}
    cpu = sorted((dict(s["labels"])["mode"], s["value"]) for s in samples
                 if s["metric"] == "node_cpu_seconds_total")
    assert cpu == [("idle", 80.0), ("user", 12.5)]
    load = [s for s in samples if s["metric"] == "node_load1"]
    assert [dict(s["labels"]) for s in load] == [{"job": "node"}, {"job": "node"}]


def test_labelled_case_never_carries_its_labels(tmp_path: Path, shared_dir: Path) -> None:
    case = shared_dir / "datasets" / "nezha" / "cases" / "ob-2022-08-22-01"
    [result] = import_path(case, tmp_path / "pkg")
    verify_package(result.package)
    definition = json.loads((case / "case.json").read_text())
    answer = definition["labels"]["root_cause_entity"]
    config = (result.package / "config.json").read_text()
    assert answer not in config and "labels" not in config and "fault_type" not in config
    package = EvidencePackage(result.package)
    assert package.manifest.window_start_ns <= package.table("samples").column("ts_ns")[0].as_py()
    assert package.config["import"]["case_id"] == "ob-2022-08-22-01"
    assert result.rows == len(package.table("samples"))


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("timestamp,entity,metric,value\n2026-01-01T00:00:00Z,host,cpu,NaN\n", NonFiniteValue, "row 1"),
        ("timestamp,entity,metric,value\n2026-01-01T00:00:00Z,host,cpu,1\n"
         "2026-01-01T00:00:00Z,host,bad metric,2\n", BadInput, "row 2"),
        ("timestamp,entity,metric,value\n2026-01-01T00:00:00Z,host,cpu,1\n"
         "2026-01-01T00:00:00Z,host,cpu,2\n", BadInput, "repeats"),
        ("timestamp,entity,value\n2026-01-01T00:00:00Z,host,1\n", BadInput, "metric"),
        ("when,entity,metric,value\n2026-01-01T00:00:00Z,host,cpu,1\n", BadInput, "time column"),
        ("timestamp,entity,metric,value\nyesterday,host,cpu,1\n", BadInput, "cannot parse times"),
    ],
)
def test_bad_tables_name_the_row_or_field(tmp_path: Path, text: str, error: type, words: str) -> None:
    source = write(tmp_path / "bad.csv", text)
    with pytest.raises(error, match=words):
        import_path(source, tmp_path / "pkg", fmt="long")
    assert not (tmp_path / "pkg" / "manifest.json").exists()


def test_bad_prometheus_exports_are_named(tmp_path: Path) -> None:
    source = tmp_path / "e.json"
    source.write_text(json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}))
    with pytest.raises(BadInput, match="range query"):
        import_path(source, tmp_path / "p1")
    source.write_text(json.dumps(prometheus_export([[1767225600]])))
    with pytest.raises(BadInput) as caught:
        import_path(source, tmp_path / "p2")
    assert caught.value.field == "data.result[0].values[0]"


def test_bad_cases_are_named(tmp_path: Path) -> None:
    case = tmp_path / "case"
    case.mkdir()
    (case / "case.json").write_text(json.dumps({"format": "other/1"}))
    with pytest.raises(SchemaVersionError):
        import_path(case, tmp_path / "pkg")
    (case / "case.json").write_text(json.dumps({"format": "sreagent-cases/1", "dataset": "d",
                                                "case_id": "c", "window": {}}))
    with pytest.raises(BadInput, match=r"metrics\.parquet"):
        import_path(case, tmp_path / "pkg")


def test_cli_imports_a_whole_dataset(tmp_path: Path, shared_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sreagent", "import", str(shared_dir / "datasets" / "nab"),
         "-o", str(tmp_path / "nab"), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    cases = sorted(p.name for p in (shared_dir / "datasets" / "nab" / "cases").iterdir())
    assert sorted(Path(x["package"]).name for x in lines) == cases
    for line in lines:
        verify_package(Path(line["package"]))
        assert line["rows"] == line["batches"]  # NAB cases are single series
