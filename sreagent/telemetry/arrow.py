"""The batch contract as Arrow: the schema, conversions, and vectorised validation.

The wire form of a batch is a one-row Arrow table whose list columns hold the rows
(``samples``, ``processes``, ``events``). The controller never builds one Python object per
sample: it validates the flattened columns with Arrow compute kernels and hands flat tables to
the journal and the hot state. :class:`BatchFrame` is that decoded, validated form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from sreagent.errors import BadInput, LimitExceeded, NonFiniteValue, SchemaVersionError
from sreagent.telemetry import batch as b

LABELS = pa.map_(pa.string(), pa.string())

SAMPLE_TYPE = pa.struct(
    [
        pa.field("ts_ns", pa.int64(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("entity", pa.string(), nullable=False),
        pa.field("labels", LABELS, nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)
PROCESS_TYPE = pa.struct(
    [
        pa.field("ts_ns", pa.int64(), nullable=False),
        pa.field("pid", pa.int32(), nullable=False),
        pa.field("ppid", pa.int32(), nullable=False),
        pa.field("comm", pa.string(), nullable=False),
        pa.field("cmdline", pa.string(), nullable=False),
        pa.field("uid", pa.int64(), nullable=False),
        pa.field("state", pa.string(), nullable=False),
        pa.field("cgroup", pa.string(), nullable=False),
        pa.field("threads", pa.int64(), nullable=False),
        pa.field("cpu_seconds_total", pa.float64(), nullable=False),
        pa.field("cpu_ratio", pa.float64(), nullable=False),
        pa.field("rss_bytes", pa.int64(), nullable=False),
        pa.field("fds", pa.int64()),
        pa.field("read_bytes_per_second", pa.float64()),
        pa.field("write_bytes_per_second", pa.float64()),
        pa.field("cpu_delay_seconds_total", pa.float64()),
        pa.field("blkio_delay_seconds_total", pa.float64()),
        pa.field("swapin_delay_seconds_total", pa.float64()),
    ]
)
EVENT_TYPE = pa.struct(
    [
        pa.field("ts_ns", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("entity", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
        pa.field("attributes", LABELS, nullable=False),
    ]
)
CAPABILITY_TYPE = pa.struct(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
INVENTORY_TYPE = pa.struct(
    [
        pa.field("cpu_model", pa.string(), nullable=False),
        pa.field("cpu_count", pa.int64(), nullable=False),
        pa.field("memory_bytes", pa.int64(), nullable=False),
        pa.field(
            "disks",
            pa.list_(
                pa.struct(
                    [
                        pa.field("name", pa.string(), nullable=False),
                        pa.field("kind", pa.string(), nullable=False),
                        pa.field("size_bytes", pa.int64(), nullable=False),
                        pa.field("rotational", pa.bool_(), nullable=False),
                        pa.field("driver", pa.string(), nullable=False),
                    ]
                )
            ),
            nullable=False,
        ),
        pa.field(
            "nics",
            pa.list_(
                pa.struct(
                    [
                        pa.field("name", pa.string(), nullable=False),
                        pa.field("speed_mbps", pa.int64()),
                        pa.field("driver", pa.string(), nullable=False),
                        pa.field("mtu", pa.int64(), nullable=False),
                    ]
                )
            ),
            nullable=False,
        ),
        pa.field(
            "gpus",
            pa.list_(
                pa.struct(
                    [
                        pa.field("index", pa.int64(), nullable=False),
                        pa.field("uuid", pa.string(), nullable=False),
                        pa.field("model", pa.string(), nullable=False),
                        pa.field("memory_bytes", pa.int64(), nullable=False),
                        pa.field("power_cap_watts", pa.float64()),
                    ]
                )
            ),
            nullable=False,
        ),
        pa.field(
            "ib_ports",
            pa.list_(
                pa.struct(
                    [
                        pa.field("device", pa.string(), nullable=False),
                        pa.field("port", pa.int64(), nullable=False),
                        pa.field("rate_gbps", pa.float64()),
                        pa.field("state", pa.string(), nullable=False),
                    ]
                )
            ),
            nullable=False,
        ),
        # CPU topology (additive, nullable: unknown where sysfs does not say).
        pa.field("cpu_sockets", pa.int64()),
        pa.field("cpu_cores", pa.int64()),
        pa.field("numa_nodes", pa.int64()),
    ]
)

HEADER_FIELDS = [
    pa.field("schema_version", pa.string(), nullable=False),
    pa.field("collector_id", pa.string(), nullable=False),
    pa.field("host", pa.string(), nullable=False),
    pa.field("producer_epoch", pa.string(), nullable=False),
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("sent_at_ns", pa.int64(), nullable=False),
    pa.field("collector_version", pa.string(), nullable=False),
    pa.field("labels", LABELS, nullable=False),
]
BATCH_SCHEMA = pa.schema(
    [
        *HEADER_FIELDS,
        pa.field("samples", pa.list_(pa.field("item", SAMPLE_TYPE, nullable=False)), False),
        pa.field("processes", pa.list_(pa.field("item", PROCESS_TYPE, nullable=False)), False),
        pa.field("events", pa.list_(pa.field("item", EVENT_TYPE, nullable=False)), False),
        pa.field(
            "capabilities", pa.list_(pa.field("item", CAPABILITY_TYPE, nullable=False)), False
        ),
        pa.field("inventory", INVENTORY_TYPE),
    ]
)
"""The Arrow schema of one encoded batch (a one-row table)."""

SAMPLES_SCHEMA = pa.schema(list(SAMPLE_TYPE))
PROCESSES_SCHEMA = pa.schema(list(PROCESS_TYPE))
EVENTS_SCHEMA = pa.schema(list(EVENT_TYPE))
_ROW_SCHEMAS = {"samples": SAMPLES_SCHEMA, "processes": PROCESSES_SCHEMA, "events": EVENTS_SCHEMA}


class BatchHeader(BaseModel):
    """The scalar part of a batch: identity, time, labels, capabilities, inventory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: str
    collector_id: b.Id
    host: b.Host
    producer_epoch: Annotated[
        str, StringConstraints(min_length=1, max_length=b.MAX_EPOCH_LEN, pattern=b.ID_PATTERN)
    ]
    seq: Annotated[int, Field(ge=1, lt=2**63)]
    sent_at_ns: b.TimeNs
    collector_version: Annotated[str, StringConstraints(max_length=64)] = ""
    labels: b.SortedLabels = {}
    capabilities: Annotated[list[b.SourceCapability], Field(max_length=b.MAX_CAPABILITIES)] = []
    inventory: b.Inventory | None = None

    @property
    def batch_id(self) -> str:
        return b.batch_id(self.collector_id, self.producer_epoch, self.seq)


@dataclass(frozen=True)
class BatchFrame:
    """A decoded, validated batch: the header as a model, the rows as flat Arrow tables."""

    header: BatchHeader
    samples: pa.Table
    processes: pa.Table
    events: pa.Table

    @property
    def batch_id(self) -> str:
        return self.header.batch_id

    @property
    def row_count(self) -> int:
        return int(self.samples.num_rows + self.processes.num_rows + self.events.num_rows)

    def to_batch(self) -> b.Batch:
        """The pydantic form (one object per row: for tests and small batches, not ingest)."""
        data: dict[str, Any] = self.header.model_dump()
        for name in ("samples", "processes", "events"):
            data[name] = [_unmap(row) for row in getattr(self, name).to_pylist()]
        return b.Batch.model_validate(data)


def _unmap(row: dict[str, Any]) -> dict[str, Any]:
    # Arrow hands map values back as lists of pairs; the models want dicts.
    return {k: dict(v) if k in ("labels", "attributes") else v for k, v in row.items()}


def batch_to_table(batch: b.Batch) -> pa.Table:
    """The one-row Arrow table of a batch (what :func:`encode_batch` writes)."""
    return pa.Table.from_pylist([batch.model_dump()], schema=BATCH_SCHEMA)


def frame_from_batch(batch: b.Batch) -> BatchFrame:
    """A :class:`BatchFrame` straight from a validated model."""
    header = BatchHeader.model_validate(
        batch.model_dump(exclude={"samples", "processes", "events"})
    )
    return BatchFrame(
        header=header,
        samples=_rows_table("samples", [s.model_dump() for s in batch.samples]),
        processes=_rows_table("processes", [p.model_dump() for p in batch.processes]),
        events=_rows_table("events", [e.model_dump() for e in batch.events]),
    )


_EMPTY_ROWS = {name: schema.empty_table() for name, schema in _ROW_SCHEMAS.items()}


def _rows_table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    if not rows:  # tables are immutable: one shared empty table per kind
        return _EMPTY_ROWS[name]
    return pa.Table.from_pylist(rows, schema=_ROW_SCHEMAS[name])


def frame_from_table(table: pa.Table) -> BatchFrame:
    """Validate a one-row batch table (from the wire) and split it into a frame.

    Raises a :class:`~sreagent.errors.BadInput` subclass that names the offending field,
    with the row index for row-level problems (``samples[12].value``).
    """
    _check_schema(table.schema)
    if table.num_rows != 1:
        raise BadInput(f"a batch table has exactly one row, this one has {table.num_rows}")
    # the one row may sit in any chunk (a stream may carry empty record batches too)
    return _frame_from_row(next(rows for rows in table.to_batches() if rows.num_rows))


def frame_from_record_batch(rows: pa.RecordBatch) -> BatchFrame:
    """:func:`frame_from_table` for a record batch (what the wire reader hands over)."""
    _check_schema(rows.schema)
    if rows.num_rows != 1:
        raise BadInput(f"a batch table has exactly one row, this one has {rows.num_rows}")
    return _frame_from_row(rows)


def _frame_from_row(rows: pa.RecordBatch) -> BatchFrame:
    # Arrays one at a time by name: wrapping every column (the inventory's nested type
    # above all) costs more than the few that are read.
    version = rows.column("schema_version").to_pylist()[0]
    if version != b.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"unknown batch schema version {version!r}; this controller speaks "
            f"{b.SCHEMA_VERSION!r} (upgrade the controller or downgrade the collector)",
            field="schema_version",
        )
    header_row = {name: rows.column(name).to_pylist()[0] for name in _HEADER_NAMES}
    header_row["labels"] = dict(header_row["labels"] or [])
    header = validate_model(BatchHeader, header_row)
    tables = {}
    for name, limit in (
        ("samples", b.MAX_SAMPLES),
        ("processes", b.MAX_PROCESSES),
        ("events", b.MAX_EVENTS),
    ):
        tables[name] = _row_table(name, rows.column(name), limit)
        if not _rows_clearly_valid(name, tables[name]):
            _check_rows(name, tables[name])  # finds the first bad row and names it
    return BatchFrame(header=header, **tables)


_HEADER_NAMES = [f.name for f in HEADER_FIELDS] + ["capabilities", "inventory"]


def _row_table(name: str, column: pa.ListArray, limit: int) -> pa.Table:
    """The flat table of one list column of the one-row batch."""
    bounds = column.offsets.to_pylist()
    if not column.null_count and bounds == [0, 0]:
        return _EMPTY_ROWS[name]  # an empty list (most batches' processes and events)
    items = column.values
    if not column.null_count and bounds == [0, len(items)]:
        # the usual layout: the row's list is the whole child array, nothing to slice
        count = len(items)
        if count > limit:
            raise LimitExceeded(f"{count} rows, at most {limit} allowed", field=name)
        return pa.Table.from_struct_array(items) if count else _EMPTY_ROWS[name]
    flat = pc.list_flatten(column)
    if len(flat) > limit:
        raise LimitExceeded(f"{len(flat)} rows, at most {limit} allowed", field=name)
    return pa.Table.from_struct_array(flat) if len(flat) else _EMPTY_ROWS[name]


def validate_model(model: type[BaseModel], data: Any) -> Any:
    """``model.model_validate`` with pydantic's error turned into a named :class:`BadInput`."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        if first["type"] == "finite_number":
            raise NonFiniteValue(first["msg"], field=field) from None
        if first["type"] in ("too_long", "string_too_long"):
            raise LimitExceeded(first["msg"], field=field) from None
        if first["type"] == "literal_error" and field.endswith("schema_version"):
            raise SchemaVersionError(
                f"unknown schema version {first.get('input')!r}: {first['msg']}", field=field
            ) from None
        raise BadInput(first["msg"], field=field) from None


_accepted_schemas: tuple[pa.Schema, ...] = (BATCH_SCHEMA,)
ACCEPTED_SCHEMAS_KEPT = 8
"""Schemas that passed the walk below (a writer may differ from BATCH_SCHEMA in details the
walk allows, such as a top-level field's nullability) are remembered, the last few distinct
ones, so that a later batch costs one C-level comparison instead of the walk."""


def _check_schema(schema: pa.Schema) -> None:
    global _accepted_schemas
    accepted = _accepted_schemas  # replaced whole, never mutated: safe across threads
    if any(schema.equals(known) for known in accepted):
        return
    _walk_schema(schema)  # raises, naming the field, when the schema is not acceptable
    _accepted_schemas = (BATCH_SCHEMA, *accepted[1:][-(ACCEPTED_SCHEMAS_KEPT - 2):], schema)


def _walk_schema(schema: pa.Schema) -> None:
    try:
        got = {f.name: f for f in schema}
    except UnicodeDecodeError as err:  # a damaged body: Arrow hands names over unchecked
        raise BadInput(f"a field name of the batch is not valid UTF-8: {err}") from None
    for expected in BATCH_SCHEMA:
        field = got.pop(expected.name, None)
        if field is None:
            raise BadInput("missing from the batch", field=expected.name)
        if not field.type.equals(expected.type):
            raise BadInput(
                f"has Arrow type {field.type}, expected {expected.type}", field=field.name
            )
    if got:
        raise BadInput("unknown field in a sreagent.batch/v1 batch", field=sorted(got)[0])


# (column, max length in characters, regex or None, nullable allowed)
_STRING_RULES: dict[str, list[tuple[str, int, str | None]]] = {
    "samples": [
        ("metric", b.MAX_METRIC_LEN, b.METRIC_PATTERN),
        ("entity", b.MAX_ENTITY_LEN, None),
    ],
    "processes": [
        ("comm", 64, None),
        ("cmdline", b.MAX_COMMAND_LEN, None),
        ("state", 1, None),
        ("cgroup", 512, None),
    ],
    "events": [
        ("kind", 64, b.EVENT_KIND_PATTERN),
        ("entity", b.MAX_ENTITY_LEN, None),
        ("source", 64, None),
        ("message", b.MAX_MESSAGE_LEN, None),
    ],
}
_MIN_ONE = {
    ("samples", "metric"),
    ("samples", "entity"),
    ("events", "kind"),
    ("events", "entity"),
    ("events", "source"),
}
_NON_NEGATIVE = {
    "samples": ["ts_ns"],
    "processes": [
        "ts_ns",
        "pid",
        "ppid",
        "uid",
        "threads",
        "rss_bytes",
        "fds",
        "cpu_seconds_total",
        "cpu_ratio",
        "read_bytes_per_second",
        "write_bytes_per_second",
        "cpu_delay_seconds_total",
        "blkio_delay_seconds_total",
        "swapin_delay_seconds_total",
    ],
    "events": ["ts_ns"],
}
_FLOATS = {
    "samples": ["value"],
    "processes": [
        "cpu_seconds_total",
        "cpu_ratio",
        "read_bytes_per_second",
        "write_bytes_per_second",
        "cpu_delay_seconds_total",
        "blkio_delay_seconds_total",
        "swapin_delay_seconds_total",
    ],
    "events": [],
}
_SEVERITIES = pa.array(["info", "warning", "error", "critical"])


def _first(mask: pa.ChunkedArray | pa.Array) -> int | None:
    """Index of the first true value in a boolean mask, or None."""
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


_LETTERS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = b"0123456789"


_BYTE_CLASSES: dict[str, tuple[bytes, bytes]] = {
    # pattern -> (bytes allowed first, bytes allowed later): each pattern is one ASCII
    # character class then another repeated; tests hold these to the regexes themselves
    b.METRIC_PATTERN: (b"_:" + _LETTERS, b"_:" + _LETTERS + _DIGITS),
    b.LABEL_KEY_PATTERN: (b"_" + _LETTERS, b"_" + _LETTERS + _DIGITS),
    b.EVENT_KIND_PATTERN: (_LETTERS[:26], _LETTERS[:26] + _DIGITS + b"_"),
}


def _strings_clearly_valid(values: pa.Array, limit: int, min_one: bool,
                           pattern: str | None) -> bool:
    """Whether every string of a null-free string array has 1 (or 0) to ``limit`` characters
    and matches ``pattern``, judged over the raw buffers without an Arrow kernel call (one
    thread). Byte lengths: UTF-8 characters never outnumber bytes, so a byte length within
    the limit proves the character length is too; a longer one is only a maybe. The pattern
    by byte classes: ``bytes.translate`` deletes the allowed bytes, and anything left (a
    non-ASCII byte included) is a maybe."""
    rows = len(values)
    if rows == 0:
        return True
    buffers = values.buffers()
    offsets = np.frombuffer(buffers[1], np.int32, rows + 1, values.offset * 4)
    lengths = np.diff(offsets)
    shortest = lengths.min()
    if lengths.max() > limit or (min_one and shortest == 0):
        return False
    if pattern:
        if shortest == 0 or buffers[2] is None:
            return False  # every pattern needs a first character
        first, rest = _BYTE_CLASSES[pattern]
        data = np.frombuffer(buffers[2], np.uint8)
        if (data[offsets[:-1]].tobytes().translate(None, first)
                or data[offsets[0]:offsets[-1]].tobytes().translate(None, rest)):
            return False
    return True


def _array(table: pa.Table, column: str) -> pa.Array:
    values = table.column(column)
    return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()


def _rows_clearly_valid(name: str, table: pa.Table) -> bool:
    """A quick pass over whole columns (null counts, numpy over the raw buffers: min/max,
    byte lengths, byte classes for the patterns) that returns True only when
    :func:`_check_rows` would pass. False means "maybe not": the caller then runs
    :func:`_check_rows`, which names the first bad row."""
    if table.num_rows == 0:
        return True
    columns = {column: _array(table, column) for column in table.column_names}
    schema = table.schema
    for column, values in columns.items():
        if values.null_count and not schema.field(column).nullable:
            return False
    for column in _FLOATS[name]:
        values = columns[column]
        values = values.drop_null() if values.null_count else values  # nullable: null is fine
        if len(values) and not np.isfinite(values.to_numpy()).all():
            return False
    for column in _NON_NEGATIVE[name]:
        values = columns[column]
        values = values.drop_null() if values.null_count else values
        if len(values) and values.to_numpy().min() < 0:
            return False
    for column, limit, pattern in _STRING_RULES[name]:
        if not _strings_clearly_valid(columns[column], limit, (name, column) in _MIN_ONE,
                                      pattern):
            return False
    if name == "events" and not pc.all(
            pc.is_in(columns["severity"], value_set=_SEVERITIES)).as_py():
        return False
    label_column = "labels" if name == "samples" else "attributes" if name == "events" else None
    if label_column:
        labels = columns[label_column]
        keys = labels.keys
        if len(keys) == 0:
            return True  # no row has labels (the usual case): nothing more to check
        counts = np.diff(labels.offsets.to_numpy())
        if len(counts) and counts.max() > b.MAX_LABELS:
            return False
        items = labels.items
        if keys.null_count or items.null_count:
            return False
        if not (_strings_clearly_valid(keys, b.MAX_LABEL_KEY_LEN, False, b.LABEL_KEY_PATTERN)
                and _strings_clearly_valid(items, b.MAX_LABEL_VALUE_LEN, False, None)):
            return False
    return True


def _check_rows(name: str, table: pa.Table) -> None:
    if table.num_rows == 0:
        return
    for column in table.column_names:
        if table.schema.field(column).nullable:
            continue
        nulls = pc.is_null(table.column(column))
        if (i := _first(nulls)) is not None:
            raise BadInput("must not be null", field=f"{name}[{i}].{column}")
    for column in _FLOATS[name]:
        values = table.column(column)
        bad = pc.and_kleene(pc.is_valid(values), pc.invert(pc.is_finite(values)))
        if (i := _first(bad)) is not None:
            raise NonFiniteValue(
                f"{values[i].as_py()!r} is not a finite number", field=f"{name}[{i}].{column}"
            )
    for column in _NON_NEGATIVE[name]:
        values = table.column(column)
        if (i := _first(pc.fill_null(pc.less(values, 0), False))) is not None:
            raise BadInput(f"{values[i].as_py()!r} is negative", field=f"{name}[{i}].{column}")
    for column, limit, pattern in _STRING_RULES[name]:
        values = table.column(column)
        lengths = pc.utf8_length(values)
        if (i := _first(pc.greater(lengths, limit))) is not None:
            raise LimitExceeded(
                f"{lengths[i].as_py()} characters, at most {limit} allowed",
                field=f"{name}[{i}].{column}",
            )
        if (name, column) in _MIN_ONE and (i := _first(pc.equal(lengths, 0))) is not None:
            raise BadInput("must not be empty", field=f"{name}[{i}].{column}")
        if (
            pattern
            and (i := _first(pc.invert(pc.match_substring_regex(values, pattern)))) is not None
        ):
            raise BadInput(
                f"{values[i].as_py()!r} does not match {pattern}", field=f"{name}[{i}].{column}"
            )
    if name == "events":
        bad = pc.invert(pc.is_in(table.column("severity"), value_set=_SEVERITIES))
        if (i := _first(bad)) is not None:
            raise BadInput(
                f"{table.column('severity')[i].as_py()!r} is not one of info, warning, error, "
                "critical",
                field=f"events[{i}].severity",
            )
    label_column = "labels" if name == "samples" else "attributes" if name == "events" else None
    if label_column:
        _check_labels(name, label_column, table.column(label_column).combine_chunks())


def _check_labels(name: str, column: str, labels: pa.MapArray) -> None:
    # A map is physically a list of (key, value) structs; reason about it as such.
    as_list = pa.ListArray.from_arrays(labels.offsets, pa.array(range(len(labels.keys))))
    counts = pc.list_value_length(as_list)
    if (i := _first(pc.greater(counts, b.MAX_LABELS))) is not None:
        raise LimitExceeded(
            f"{counts[i].as_py()} labels, at most {b.MAX_LABELS} allowed",
            field=f"{name}[{i}].{column}",
        )
    keys, items = labels.keys, labels.items
    if len(keys) == 0:
        return
    parents = pc.list_parent_indices(as_list)
    for values, limit, pattern, what in (
        (keys, b.MAX_LABEL_KEY_LEN, b.LABEL_KEY_PATTERN, "key"),
        (items, b.MAX_LABEL_VALUE_LEN, None, "value"),
    ):
        if (j := _first(pc.is_null(values))) is not None:
            raise BadInput(f"label {what} must not be null", field=f"{name}[{parents[j]}].{column}")
        lengths = pc.utf8_length(values)
        if (j := _first(pc.greater(lengths, limit))) is not None:
            raise LimitExceeded(
                f"label {what} of {lengths[j].as_py()} characters, at most {limit} allowed",
                field=f"{name}[{parents[j]}].{column}",
            )
        if (
            pattern
            and (j := _first(pc.invert(pc.match_substring_regex(values, pattern)))) is not None
        ):
            raise BadInput(
                f"label key {values[j].as_py()!r} does not match {pattern}",
                field=f"{name}[{parents[j]}].{column}",
            )
