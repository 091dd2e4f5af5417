"""The canonical long form into an evidence package, one batch per timestamp.

Imported telemetry becomes ordinary batches (``sreagent.batch/v1``) so that replay, the
notebooks and the evaluation cannot tell it from collected telemetry except by its capability
report, which names the import. Tables are built column-wise: a year of minute data is
hundreds of thousands of batches, far too many to build one Python object each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from sreagent.canonical import sha256_hex
from sreagent.evidence import Manifest, write_package
from sreagent.evidence.tables import BATCHES_SCHEMA, ROW_TABLES
from sreagent.telemetry.wire import content_digest

IMPORT_COLLECTOR = "import"


def _labels_array(labels: pl.Series) -> pa.Array:
    """A polars list-of-{key, value} column as an Arrow ``map<string, string>``."""
    as_list = labels.to_arrow()
    if isinstance(as_list, pa.ChunkedArray):
        as_list = as_list.combine_chunks()
    as_list = as_list.cast(pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())])))
    values = as_list.values
    return pa.MapArray.from_arrays(
        as_list.offsets,
        values.field("key"),
        values.field("value"),
        type=pa.map_(pa.string(), pa.string()),
    )


def long_to_tables(
    long: pl.DataFrame, *, host: str, epoch: str, source: str, reason: str
) -> dict[str, pa.Table]:
    """Batches and samples tables from a canonical long frame (sorted by time)."""
    times = long.get_column("ts_ns").unique(maintain_order=True).to_numpy()
    seq_of_time = {int(t): i + 1 for i, t in enumerate(times)}
    seqs = np.searchsorted(times, long.get_column("ts_ns").to_numpy()) + 1
    batch_ids = f"{IMPORT_COLLECTOR}/{epoch}/" + pl.Series(seqs).cast(pl.String)
    samples = pa.Table.from_arrays(
        [
            batch_ids.to_arrow().cast(pa.string()),
            pa.array([host] * long.height, pa.string()),
            long.get_column("ts_ns").to_arrow().cast(pa.int64()),
            long.get_column("metric").to_arrow().cast(pa.string()),
            long.get_column("entity").to_arrow().cast(pa.string()),
            _labels_array(long.get_column("labels")),
            long.get_column("value").to_arrow().cast(pa.float64()),
        ],
        schema=ROW_TABLES["samples"],
    )
    capability = [{"source": source, "mode": "fallback", "reason": reason}]
    rows: list[dict[str, Any]] = []
    bounds = np.searchsorted(seqs, np.arange(1, len(times) + 2))
    columns = {
        name: samples.column(name).to_pylist()
        for name in ("ts_ns", "metric", "entity", "labels", "value")
    }
    for t, start, end in zip(
        times.tolist(), bounds[:-1].tolist(), bounds[1:].tolist(), strict=True
    ):
        seq = seq_of_time[t]
        header = {
            "schema_version": "sreagent.batch/v1",
            "collector_id": IMPORT_COLLECTOR,
            "host": host,
            "producer_epoch": epoch,
            "seq": seq,
            "sent_at_ns": t,
            "collector_version": "",
            "labels": {},
            "capabilities": capability,
            "inventory": None,
        }
        sample_columns = {k: v[start:end] for k, v in columns.items()}
        digest = content_digest(
            header,
            {
                "samples": sample_columns,
                "processes": _EMPTY["processes"],
                "events": _EMPTY["events"],
            },
        )
        rows.append(
            {
                **{k: v for k, v in header.items() if k != "schema_version"},
                "batch_id": f"{IMPORT_COLLECTOR}/{epoch}/{seq}",
                "digest": digest,
                "sample_count": end - start,
                "process_count": 0,
                "event_count": 0,
            }
        )
    return {
        "batches": pa.Table.from_pylist(rows, schema=BATCHES_SCHEMA),
        "samples": samples,
        "processes": ROW_TABLES["processes"].empty_table(),
        "events": ROW_TABLES["events"].empty_table(),
    }


_EMPTY: dict[str, dict[str, list[Any]]] = {
    name: {f.name: [] for f in schema if f.name not in ("batch_id", "host")}
    for name, schema in ROW_TABLES.items()
}


def write_import(
    long: pl.DataFrame,
    out: Path,
    *,
    run_id: str,
    host: str,
    source: str,
    source_bytes: bytes,
    config: dict[str, Any],
    window: tuple[int, int] | None = None,
) -> Manifest:
    """Write ``long`` as an evidence package at ``out`` with ``source="import"``."""
    if long.height == 0:
        from sreagent.errors import BadInput

        raise BadInput("nothing to import: the input holds no rows", path=source)
    epoch = "import-" + sha256_hex(source_bytes)[:16]
    tables = long_to_tables(
        long,
        host=host,
        epoch=epoch,
        source=f"import:{config['import']['format']}",
        reason=f"imported from {source}",
    )
    times = long.get_column("ts_ns")
    steps = times.unique().sort().diff().drop_nulls()
    config = {**config, "telemetry": {"resolution_s": float(steps.median() or 0) / 1e9}}  # type: ignore[arg-type]
    return write_package(
        out,
        run_id=run_id,
        source="import",
        config=config,
        tables=tables,
        window=window or (int(times.min()), int(times.max())),  # type: ignore[arg-type]
    )
