"""Importers: telemetry captured elsewhere into evidence packages (``sreagent import``).

Formats:

* ``long``: a CSV/Parquet table with a time column (``ts_ns``, ``ts``, ``timestamp`` or
  ``time``) and ``entity``, ``metric``, ``value`` columns;
* ``wide``: a CSV/Parquet table with a time column and one numeric column per metric, all of
  one entity (``entity=``, default ``host``);
* ``prometheus``: a ``query_range`` JSON export (:mod:`._prometheus`);
* ``case``: one case of the ``sreagent-cases/1`` layout (``../shared/datasets``); its labels
  are never copied into the package, so nothing downstream can read the answer;
* ``dataset``: a folder of such cases, one package per case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from sreagent.errors import BadInput, SchemaVersionError
from sreagent.evidence import Manifest
from sreagent.importers._alerts import alert_tables
from sreagent.importers._long import is_long, read_long, read_wide
from sreagent.importers._package import write_import
from sreagent.importers._prometheus import read_prometheus

Format = Literal["long", "wide", "prometheus", "case", "dataset"]
FORMATS: tuple[str, ...] = ("long", "wide", "prometheus", "case", "dataset")
CASES_FORMAT = "sreagent-cases/1"


@dataclass(frozen=True)
class ImportResult:
    """One package written by an import."""

    source: Path
    package: Path
    manifest: Manifest
    rows: int
    dropped_non_finite: int = 0


def detect_format(path: Path) -> Format:
    """Guess the format of ``path`` from what it is."""
    if path.is_dir():
        if (path / "case.json").exists():
            return "case"
        if (path / "cases").is_dir():
            return "dataset"
        raise BadInput(
            "a folder to import holds case.json (a case) or cases/ (a dataset)", path=str(path)
        )
    if not path.exists():
        raise BadInput("no such file", path=str(path))
    if path.suffix.lower() == ".json":
        return "prometheus"
    return "long" if is_long(path) else "wide"


def import_path(
    path: Path,
    out: Path,
    *,
    fmt: Format | None = None,
    host: str | None = None,
    entity: str = "host",
    entity_label: str = "instance",
    run_id: str | None = None,
    on_case: Callable[[str], None] | None = None,
) -> list[ImportResult]:
    """Import ``path`` into evidence package(s) under ``out``.

    For a single source ``out`` is the package folder; for a dataset it is a folder that gets
    one package per case (``out/<case_id>``). ``on_case`` is called after each case (progress).
    """
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise BadInput(f"unknown import format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "dataset":
        cases = sorted(p for p in (path / "cases").iterdir() if (p / "case.json").exists())
        if not cases:
            raise BadInput("the dataset has no cases (cases/<id>/case.json)", path=str(path))
        results = []
        for case in cases:
            results += import_path(case, out / case.name, fmt="case", host=host)
            if on_case:
                on_case(case.name)
        return results
    if fmt == "case":
        return [_import_case(path, out, host=host, run_id=run_id)]
    dropped = 0
    if fmt == "prometheus":
        imported = read_prometheus(path, entity_label=entity_label)
        long, dropped = imported.frame, imported.dropped_non_finite
    elif fmt == "long":
        long = read_long(path)
    else:
        long = read_wide(path, entity=entity)
    manifest = write_import(
        long,
        out,
        run_id=run_id or f"import-{path.stem}",
        host=host or "imported",
        source=path.name,
        source_bytes=path.read_bytes(),
        config={"import": {"format": fmt, "source": path.name}},
    )
    return [ImportResult(path, out, manifest, long.height, dropped)]


def _import_case(case: Path, out: Path, *, host: str | None, run_id: str | None) -> ImportResult:
    try:
        definition = json.loads((case / "case.json").read_bytes())
    except (OSError, json.JSONDecodeError) as err:
        raise BadInput(f"case.json cannot be read: {err}", path=str(case / "case.json")) from None
    if not isinstance(definition, dict) or definition.get("format") != CASES_FORMAT:
        raise SchemaVersionError(
            f"not a {CASES_FORMAT} case", path=str(case / "case.json"), field="format"
        )
    for key in ("dataset", "case_id", "window"):
        if key not in definition:
            raise BadInput(f"case.json has no {key}", path=str(case / "case.json"), field=key)
    metrics = case / "metrics.parquet"
    if not metrics.exists():
        raise BadInput("the case has no metrics.parquet", path=str(case))
    parts = [read_long(metrics)]
    baseline = case / "baseline.parquet"
    if baseline.exists():
        parts.insert(0, read_long(baseline))
    long = (
        pl.concat(parts)
        .unique(["ts_ns", "entity", "metric"], keep="last")
        .sort("ts_ns", "entity", "metric")
    )
    window = definition["window"]
    start, end = (
        pl.Series([window["start"], window["end"]])
        .str.to_datetime(time_zone="UTC")
        .dt.epoch("ns")
        .to_list()
    )
    source_bytes = (case / "case.json").read_bytes() + metrics.read_bytes()
    manifest = write_import(
        long,
        out,
        run_id=run_id or f"{definition['dataset']}-{definition['case_id']}",
        host=host or definition.get("system") or definition["dataset"],
        source=f"{definition['dataset']}/{definition['case_id']}",
        source_bytes=source_bytes,
        config={
            "import": {
                "format": "case",
                "source": f"{definition['dataset']}/cases/{definition['case_id']}",
                "dataset": definition["dataset"],
                "case_id": definition["case_id"],
                "task": definition.get("task"),
                "has_baseline": baseline.exists(),
            }
        },
        window=(int(start), int(end)),
    )
    return ImportResult(case, out, manifest, long.height)


__all__ = ["FORMATS", "Format", "ImportResult", "alert_tables", "detect_format", "import_path"]
