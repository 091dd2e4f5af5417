"""Long and wide tables (CSV or Parquet) into the canonical long form.

The canonical long form is a polars frame with exactly ``ts_ns`` (Int64), ``entity``,
``metric`` (String), ``labels`` (list of key/value structs, usually empty) and ``value``
(Float64), sorted by time, entity, metric. Every importer
produces it; :mod:`sreagent.importers._package` turns it into an evidence package.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from sreagent.errors import BadInput, NonFiniteValue
from sreagent.telemetry import batch as contract

LONG_COLUMNS = ("ts_ns", "entity", "metric", "labels", "value")
LABELS_DTYPE = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))
TIME_COLUMNS = ("ts_ns", "ts", "timestamp", "time")
_METRIC = re.compile(contract.METRIC_PATTERN)


def read_table(path: Path) -> pl.DataFrame:
    """Read a CSV or Parquet file, with errors that name the file."""
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        if path.suffix.lower() in (".csv", ".tsv"):
            return pl.read_csv(
                path,
                separator="\t" if path.suffix.lower() == ".tsv" else ",",
                try_parse_dates=True,
                infer_schema_length=10_000,
            )
    except (pl.exceptions.PolarsError, OSError) as err:
        raise BadInput(f"cannot read the table: {err}", path=str(path)) from None
    raise BadInput("unknown table format; use .csv, .tsv or .parquet", path=str(path))


def time_column(frame: pl.DataFrame, path: Path) -> str:
    for name in TIME_COLUMNS:
        if name in frame.columns:
            return name
    raise BadInput(f"no time column; name one of {', '.join(TIME_COLUMNS)}", path=str(path))


def to_ns(frame: pl.DataFrame, column: str, path: Path) -> pl.Series:
    """Timestamps as Int64 ns since the epoch, UTC; naive datetimes are taken as UTC."""
    series = frame.get_column(column)
    if series.dtype == pl.Datetime:
        zone = series.dtype.time_zone  # type: ignore[attr-defined]
        if zone is None:
            series = series.dt.replace_time_zone("UTC")
        return series.dt.epoch("ns").alias("ts_ns")
    if series.dtype == pl.Date:
        return series.cast(pl.Datetime("ns")).dt.epoch("ns").alias("ts_ns")
    if series.dtype.is_integer():
        # Integers are read by magnitude: seconds, milliseconds, microseconds or nanoseconds.
        peak = int(series.abs().max() or 0)  # type: ignore[arg-type]
        scale = (
            10**9 if peak < 10**11 else 10**6 if peak < 10**14 else 10**3 if peak < 10**17 else 1
        )
        return (series.cast(pl.Int64) * scale).alias("ts_ns")
    if series.dtype.is_float():
        return (series * 1e9).round().cast(pl.Int64).alias("ts_ns")
    if series.dtype == pl.String:
        try:
            parsed = series.str.to_datetime(time_zone="UTC", time_unit="ns")
        except pl.exceptions.PolarsError as err:
            raise BadInput(f"cannot parse times: {err}", path=str(path), field=column) from None
        return parsed.dt.epoch("ns").alias("ts_ns")
    raise BadInput(f"times of type {series.dtype} are not understood", path=str(path), field=column)


def check_long(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Validate a canonical long frame; errors name the first bad row (1-based, in file order)."""
    frame = frame.with_row_index("_row", offset=1)
    for column in ("ts_ns", "entity", "metric", "value"):
        nulls = frame.filter(pl.col(column).is_null())
        if nulls.height:
            raise BadInput(f"row {nulls['_row'][0]} has no {column}", path=str(path), field=column)
    bad = frame.filter(~pl.col("value").is_finite())
    if bad.height:
        raise NonFiniteValue(
            f"row {bad['_row'][0]} has value {bad['value'][0]}; remove or fill it",
            path=str(path),
            field="value",
        )
    bad = frame.filter(pl.col("ts_ns") < 0)
    if bad.height:
        raise BadInput(f"row {bad['_row'][0]} is before 1970", path=str(path), field="ts_ns")
    bad = frame.filter(
        ~pl.col("metric").str.contains(contract.METRIC_PATTERN)
        | (pl.col("metric").str.len_chars() > contract.MAX_METRIC_LEN)
    )
    if bad.height:
        raise BadInput(
            f"row {bad['_row'][0]}: metric {bad['metric'][0]!r} is not a valid name "
            f"({contract.METRIC_PATTERN}, at most {contract.MAX_METRIC_LEN} characters)",
            path=str(path),
            field="metric",
        )
    bad = frame.filter(
        (pl.col("entity").str.len_chars() == 0)
        | (pl.col("entity").str.len_chars() > contract.MAX_ENTITY_LEN)
    )
    if bad.height:
        raise BadInput(
            f"row {bad['_row'][0]}: entity must have 1 to {contract.MAX_ENTITY_LEN} characters",
            path=str(path),
            field="entity",
        )
    key = [c for c in ("ts_ns", "entity", "metric", "labels") if c in frame.columns]
    dupes = frame.filter(pl.struct(key).is_duplicated())
    if dupes.height:
        raise BadInput(
            f"row {dupes['_row'][0]} repeats (time, entity, metric) of another row", path=str(path)
        )
    if "labels" not in frame.columns:
        frame = frame.with_columns(pl.lit([], dtype=LABELS_DTYPE).alias("labels"))
    return frame.drop("_row").sort("ts_ns", "entity", "metric").select(LONG_COLUMNS)


def read_long(path: Path) -> pl.DataFrame:
    """A long table: a time column plus ``entity``, ``metric``, ``value``."""
    frame = read_table(path)
    missing = [c for c in ("entity", "metric", "value") if c not in frame.columns]
    if missing:
        raise BadInput(
            f"a long table needs columns entity, metric, value; missing {missing}", path=str(path)
        )
    ts = to_ns(frame, time_column(frame, path), path)
    long = frame.select(
        ts,
        pl.col("entity").cast(pl.String),
        pl.col("metric").cast(pl.String),
        pl.col("value").cast(pl.Float64, strict=False),
    )
    return check_long(long, path)


def read_wide(path: Path, entity: str = "host") -> pl.DataFrame:
    """A wide table: a time column plus one numeric column per metric, all of one entity."""
    frame = read_table(path)
    column = time_column(frame, path)
    metrics = [c for c in frame.columns if c != column]
    if not metrics:
        raise BadInput("a wide table needs at least one metric column", path=str(path))
    for name in metrics:
        if not frame.schema[name].is_numeric():
            raise BadInput(f"column {name!r} is not numeric", path=str(path), field=name)
    long = (
        frame.with_columns(to_ns(frame, column, path))
        .select("ts_ns", *[pl.col(m).cast(pl.Float64) for m in metrics])
        .unpivot(index="ts_ns", variable_name="metric", value_name="value")
        .filter(pl.col("value").is_not_null())
        .with_columns(pl.lit(entity).alias("entity"))
        .select("ts_ns", "entity", "metric", "value")
    )
    return check_long(long, path)


def is_long(path: Path) -> bool:
    """Whether a table looks long (has entity, metric and value columns)."""
    frame = read_table(path).head(0)
    return {"entity", "metric", "value"} <= set(frame.columns)
