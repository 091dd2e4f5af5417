"""Load and validate a directory in the ``sreagent-cases/1`` layout.

The layout and its label fields are defined in ``shared/datasets/README.md`` and summarised in
docs/evaluation-method.md. A dataset directory holds ``cases/<case_id>/case.json`` plus
``metrics.parquet`` and, optionally, ``baseline.parquet``. Every malformed case is refused with a
:class:`~sreagent.errors.BadInput` that names the case and the field, before anything is scored.

The labels are for the scorer only: nothing in :mod:`sreagent.eval.baselines` reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import polars as pl
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from sreagent.errors import BadInput, SchemaVersionError

CASES_FORMAT = "sreagent-cases/1"

#: The exact columns and types of ``metrics.parquet`` and ``baseline.parquet``.
METRICS_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("ms", "UTC"),
    "entity": pl.String(),
    "metric": pl.String(),
    "value": pl.Float64(),
}


def _utc(value: datetime) -> datetime:
    # The layout writes every instant as ISO 8601 UTC with "Z"; a naive or offset time would be
    # read differently by different tools, so it is refused rather than guessed.
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError("must be an ISO 8601 UTC time ending in Z")
    return value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc)]
Name = Annotated[str, Field(min_length=1)]


def _ordered(interval: tuple[datetime, datetime]) -> tuple[datetime, datetime]:
    if interval[0] > interval[1]:
        raise ValueError(f"interval ends before it starts: {interval[0]} > {interval[1]}")
    return interval


Interval = Annotated[tuple[UtcTime, UtcTime], AfterValidator(_ordered)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimeWindow(_Frozen):
    """The closed time span a case is about."""

    start: UtcTime
    end: UtcTime

    @model_validator(mode="after")
    def _check_order(self) -> TimeWindow:
        if self.start > self.end:
            raise ValueError(f"window ends before it starts: {self.start} > {self.end}")
        return self

    def contains(self, instant: datetime) -> bool:
        """Whether ``instant`` lies inside the closed window."""
        return self.start <= instant <= self.end


class Source(_Frozen):
    """Where upstream the case was built from."""

    repo: Name
    commit: Name
    path: Name


class OtherFault(_Frozen):
    """Another injection inside an rca case's window (Nezha injects every 6-10 minutes)."""

    inject_time: UtcTime
    root_cause_entity: Name
    root_cause_service: Name
    fault_type: Name


class RcaLabels(_Frozen):
    """Ground truth of an ``rca`` case: one injected fault."""

    root_cause_entity: Name
    root_cause_service: Name
    fault_type: Name
    inject_time: UtcTime
    metric_observable: bool
    inner_label: str | None = None
    other_faults_in_window: tuple[OtherFault, ...] = ()


class Culprit(_Frozen):
    """The metrics labelled as the cause of one anomaly segment (SMD, ASD)."""

    start: UtcTime
    end: UtcTime
    metrics: tuple[Name, ...] = Field(min_length=1)
    anomaly_type: str | None = None

    @model_validator(mode="after")
    def _check_order(self) -> Culprit:
        if self.start > self.end:
            raise ValueError(f"culprit segment ends before it starts: {self.start} > {self.end}")
        return self


class DetectionLabels(_Frozen):
    """Ground truth of a ``detection`` case."""

    anomaly_windows: tuple[Interval, ...]
    anomaly_points: tuple[UtcTime, ...] | None = None
    culprits: tuple[Culprit, ...] | None = None


class CaseSpec(_Frozen):
    """One ``case.json``: the case definition and its labels."""

    format: str
    dataset: Name
    case_id: Name
    task: Literal["rca", "detection"]
    window: TimeWindow
    labels: RcaLabels | DetectionLabels
    source: Source
    system: str | None = None

    @model_validator(mode="after")
    def _check_labels_in_window(self) -> CaseSpec:
        expected = RcaLabels if self.task == "rca" else DetectionLabels
        if not isinstance(self.labels, expected):
            raise ValueError(f"labels do not have the fields of a {self.task} case")
        if isinstance(self.labels, RcaLabels):
            if not self.window.contains(self.labels.inject_time):
                raise ValueError("labels.inject_time lies outside the case window")
            return self
        for n, (start, end) in enumerate(self.labels.anomaly_windows):
            if not (self.window.contains(start) and self.window.contains(end)):
                raise ValueError(f"labels.anomaly_windows[{n}] lies outside the case window")
        return self

    @property
    def rca(self) -> RcaLabels:
        """The labels of an rca case (raises ``TypeError`` on a detection case)."""
        if not isinstance(self.labels, RcaLabels):
            raise TypeError(f"case {self.case_id} is a {self.task} case, not rca")
        return self.labels

    @property
    def detection(self) -> DetectionLabels:
        """The labels of a detection case (raises ``TypeError`` on an rca case)."""
        if not isinstance(self.labels, DetectionLabels):
            raise TypeError(f"case {self.case_id} is a {self.task} case, not detection")
        return self.labels


class Case(_Frozen):
    """A validated case: its definition and the directory holding its telemetry."""

    spec: CaseSpec
    directory: Path

    @property
    def case_id(self) -> str:
        return self.spec.case_id

    @property
    def has_baseline(self) -> bool:
        """Whether the case ships ``baseline.parquet`` (normal-ish data for fitting)."""
        return (self.directory / "baseline.parquet").is_file()

    def metrics(self) -> pl.DataFrame:
        """The telemetry to analyse, long format, validated against the layout."""
        return read_metrics(self.directory / "metrics.parquet", case_id=self.case_id)

    def baseline(self) -> pl.DataFrame | None:
        """The fault-free / training telemetry, or ``None`` when the dataset has none."""
        if not self.has_baseline:
            return None
        return read_metrics(self.directory / "baseline.parquet", case_id=self.case_id)


class Dataset(_Frozen):
    """A dataset directory with every case validated."""

    name: str
    root: Path
    cases: tuple[Case, ...]

    @property
    def task(self) -> Literal["rca", "detection"]:
        """The task all cases share."""
        return self.cases[0].spec.task

    def __iter__(self) -> Iterator[Case]:  # type: ignore[override]
        return iter(self.cases)

    def __len__(self) -> int:
        return len(self.cases)


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif parts:
            parts.append(f".{item}")
        else:
            parts.append(item)
    return "".join(parts)


def parse_case_json(raw: bytes, *, where: str) -> CaseSpec:
    """Parse and validate the bytes of one ``case.json``; ``where`` names it in errors."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput(f"case.json is not valid JSON: {err}", path=where) from err
    if not isinstance(document, dict):
        raise BadInput("case.json must hold one JSON object", path=where)
    if document.get("format") != CASES_FORMAT:
        raise SchemaVersionError(
            f"format is {document.get('format')!r}; this code reads {CASES_FORMAT!r}",
            field="format",
            path=where,
        )
    # The task decides the label model; validating the labels on their own first names the
    # label field that is wrong instead of reporting the errors of both label models.
    labels_models: dict[object, type[RcaLabels] | type[DetectionLabels]] = {
        "rca": RcaLabels,
        "detection": DetectionLabels,
    }
    labels_model = labels_models.get(document.get("task"))
    try:
        if labels_model is not None and isinstance(document.get("labels"), dict):
            labels = labels_model.model_validate(document["labels"])
            document = {**document, "labels": labels}
    except ValidationError as err:
        raise _bad_input(err, where, prefix=("labels",)) from err
    try:
        return CaseSpec.model_validate(document)
    except ValidationError as err:
        raise _bad_input(err, where) from err


def _bad_input(err: ValidationError, where: str, prefix: tuple[str, ...] = ()) -> BadInput:
    first = err.errors()[0]
    field = _field_path((*prefix, *first["loc"])) or None
    more = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
    return BadInput(f"{first['msg']}{more}", field=field, path=where)


def load_case(directory: Path, *, dataset: str | None = None) -> Case:
    """Load and validate one case directory (``case.json`` + ``metrics.parquet``)."""
    where = str(directory / "case.json")
    try:
        raw = (directory / "case.json").read_bytes()
    except OSError as err:
        raise BadInput(f"cannot read case.json: {err.strerror or err}", path=where) from err
    spec = parse_case_json(raw, where=where)
    if spec.case_id != directory.name:
        raise BadInput(
            f"case_id {spec.case_id!r} differs from its directory name {directory.name!r}",
            field="case_id",
            path=where,
        )
    if dataset is not None and spec.dataset != dataset:
        raise BadInput(
            f"dataset {spec.dataset!r} differs from the dataset directory {dataset!r}",
            field="dataset",
            path=where,
        )
    if not (directory / "metrics.parquet").is_file():
        raise BadInput("case has no metrics.parquet", path=str(directory))
    return Case(spec=spec, directory=directory)


def load_dataset(root: Path | str) -> Dataset:
    """Load every case under ``root/cases`` (sorted by case id), validating each.

    Raises :class:`BadInput` naming the first malformed case, or when the directory holds no
    cases, or when cases disagree on the task.
    """
    root = Path(root)
    cases_dir = root / "cases"
    if not cases_dir.is_dir():
        raise BadInput(f"not a {CASES_FORMAT} dataset directory: no cases/ folder", path=str(root))
    case_dirs = sorted(p for p in cases_dir.iterdir() if p.is_dir())
    if not case_dirs:
        raise BadInput("cases/ holds no case directories", path=str(cases_dir))
    cases = tuple(load_case(d, dataset=root.name) for d in case_dirs)
    tasks = {c.spec.task for c in cases}
    if len(tasks) > 1:
        raise BadInput(
            f"cases mix tasks {sorted(tasks)}; a dataset directory holds one task",
            path=str(root),
        )
    return Dataset(name=root.name, root=root, cases=cases)


def read_metrics(path: Path, *, case_id: str) -> pl.DataFrame:
    """Read a long-format telemetry file and check it against the layout.

    Checks the exact columns and types, that values are finite and that ``(ts, entity,
    metric)`` is unique; rows are returned sorted by ``ts, entity, metric``.
    """
    where = str(path)
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as err:
        raise BadInput(f"case {case_id}: cannot read parquet: {err}", path=where) from err
    schema = dict(frame.schema)
    if list(schema) != list(METRICS_SCHEMA):
        raise BadInput(
            f"case {case_id}: columns are {list(schema)}, expected {list(METRICS_SCHEMA)}",
            path=where,
        )
    for column, expected in METRICS_SCHEMA.items():
        if schema[column] != expected:
            raise BadInput(
                f"case {case_id}: column {column} is {schema[column]}, expected {expected}",
                field=column,
                path=where,
            )
    if frame.null_count().sum_horizontal().item() > 0:
        raise BadInput(f"case {case_id}: null values present", path=where)
    if not frame["value"].is_finite().all():
        raise BadInput(f"case {case_id}: non-finite values present", field="value", path=where)
    if frame.select(pl.struct("ts", "entity", "metric").is_duplicated().any()).item():
        raise BadInput(f"case {case_id}: (ts, entity, metric) repeats", field="ts", path=where)
    return frame.sort("ts", "entity", "metric")
