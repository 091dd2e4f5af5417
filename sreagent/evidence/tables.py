"""Arrow schemas of the tables in evidence packages and the journal, and row builders."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from sreagent.artifacts import Artifact
from sreagent.canonical import canonical_json, sha256_hex
from sreagent.telemetry.arrow import (
    CAPABILITY_TYPE,
    EVENTS_SCHEMA,
    INVENTORY_TYPE,
    LABELS,
    PROCESSES_SCHEMA,
    SAMPLES_SCHEMA,
    BatchFrame,
)
from sreagent.telemetry.wire import batch_digest

BATCH_ID = pa.field("batch_id", pa.string(), nullable=False)
HOST = pa.field("host", pa.string(), nullable=False)

BATCHES_SCHEMA = pa.schema(
    [
        BATCH_ID,
        pa.field("collector_id", pa.string(), nullable=False),
        HOST,
        pa.field("producer_epoch", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("sent_at_ns", pa.int64(), nullable=False),
        pa.field("collector_version", pa.string(), nullable=False),
        pa.field("labels", LABELS, nullable=False),
        pa.field("capabilities", pa.list_(pa.field("item", CAPABILITY_TYPE, False)), False),
        pa.field("inventory", INVENTORY_TYPE),
        pa.field("digest", pa.string(), nullable=False),
        pa.field("sample_count", pa.int64(), nullable=False),
        pa.field("process_count", pa.int64(), nullable=False),
        pa.field("event_count", pa.int64(), nullable=False),
    ]
)
"""One row per batch: its identity, header and content digest."""

ROW_TABLES: dict[str, pa.Schema] = {
    "samples": pa.schema([BATCH_ID, HOST, *SAMPLES_SCHEMA]),
    "processes": pa.schema([BATCH_ID, HOST, *PROCESSES_SCHEMA]),
    "events": pa.schema([BATCH_ID, HOST, *EVENTS_SCHEMA]),
}
"""Row tables keyed by name; every row carries its batch id and host."""

ARTIFACTS_SCHEMA = pa.schema(
    [
        pa.field("position", pa.int64(), nullable=False),
        pa.field("artifact_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("schema_version", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("incident_id", pa.string(), nullable=False),
        pa.field("correlation_id", pa.string(), nullable=False),
        pa.field("producer", pa.string(), nullable=False),
        pa.field("consumer", pa.string(), nullable=False),
        pa.field("logical_time", pa.int64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("input_artifact_ids", pa.list_(pa.string()), nullable=False),
        pa.field("evidence_refs", pa.string(), nullable=False),
        pa.field("replayable", pa.bool_(), nullable=False),
        pa.field("recorded_activity_ids", pa.list_(pa.string()), nullable=False),
        pa.field("payload_schema_version", pa.string(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
    ]
)
"""One row per artifact: envelope columns, payload as canonical JSON."""

ACTIVITIES_SCHEMA = pa.schema(
    [
        pa.field("position", pa.int64(), nullable=False),
        pa.field("activity_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("logical_time", pa.int64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("request", pa.string(), nullable=False),
        pa.field("result", pa.string(), nullable=False),
    ]
)
"""One row per recorded activity (an effect whose result replay feeds back)."""


def batch_rows(frame: BatchFrame, digest: str | None = None) -> dict[str, Any]:
    """The ``batches`` row of one frame."""
    header = frame.header
    return {
        "batch_id": header.batch_id,
        "collector_id": header.collector_id,
        "host": header.host,
        "producer_epoch": header.producer_epoch,
        "seq": header.seq,
        "sent_at_ns": header.sent_at_ns,
        "collector_version": header.collector_version,
        "labels": header.labels,
        "capabilities": [c.model_dump() for c in header.capabilities],
        "inventory": header.inventory.model_dump() if header.inventory else None,
        "digest": digest or batch_digest(frame),
        "sample_count": frame.samples.num_rows,
        "process_count": frame.processes.num_rows,
        "event_count": frame.events.num_rows,
    }


def with_identity(frame: BatchFrame, name: str) -> pa.Table:
    """A frame's row table with ``batch_id`` and ``host`` columns in front."""
    rows: pa.Table = getattr(frame, name)
    n = rows.num_rows
    columns = [
        pa.array([frame.batch_id] * n, pa.string()),
        pa.array([frame.header.host] * n, pa.string()),
        *rows.columns,
    ]
    return pa.Table.from_arrays(columns, schema=ROW_TABLES[name])


def frames_to_tables(frames: Sequence[BatchFrame]) -> dict[str, pa.Table]:
    """The ``batches``, ``samples``, ``processes`` and ``events`` tables of many frames."""
    tables = {"batches": pa.Table.from_pylist([batch_rows(f) for f in frames], BATCHES_SCHEMA)}
    for name, schema in ROW_TABLES.items():
        parts = [with_identity(f, name) for f in frames]
        tables[name] = pa.concat_tables(parts) if parts else schema.empty_table()
    return tables


def artifacts_table(artifacts: Iterable[Artifact]) -> pa.Table:
    """Artifacts as rows, in chain order (``position``)."""
    rows = []
    for position, artifact in enumerate(artifacts):
        data = artifact.model_dump(mode="json")
        rows.append(
            {
                "position": position,
                **{
                    k: data[k]
                    for k in ARTIFACTS_SCHEMA.names
                    if k in data and k not in ("evidence_refs", "payload")
                },
                "evidence_refs": canonical_json(data["evidence_refs"]).decode(),
                "payload_schema_version": data["payload"]["schema_version"],
                "payload": canonical_json(data["payload"]).decode(),
            }
        )
    return pa.Table.from_pylist(rows, schema=ARTIFACTS_SCHEMA)


def artifacts_from_table(table: pa.Table) -> list[Artifact]:
    """Rebuild artifacts from their rows (ids are re-checked by the model)."""
    out = []
    for row in table.sort_by("position").to_pylist():
        row.pop("position")
        row.pop("payload_schema_version")
        row["evidence_refs"] = json.loads(row["evidence_refs"])
        row["payload"] = json.loads(row["payload"])
        out.append(Artifact.model_validate(row))
    return out


STORED_AS_JSON = ("evidence_refs", "payload")
"""Envelope fields an artifact row keeps as their canonical JSON text."""

NOT_IN_ENVELOPE = ("position", "artifact_id", "payload_schema_version")
"""Artifact columns outside the hashed envelope (row order, the id itself, a copy of
``payload.schema_version`` for readers that filter without parsing JSON)."""


def stored_artifact_ids(table: pa.Table) -> list[tuple[str, str]]:
    """(recorded id, content hash of the stored envelope) of every artifact row, in chain
    order, computed from the bytes as stored.

    An envelope's id is the SHA-256 of its canonical JSON (keys sorted, docs/formats.md);
    canonical JSON of an object is its members ``"key":value`` in key order, each value
    canonical itself. The payload and evidence references are stored as exactly that text,
    so the envelope is spliced from the row without parsing or re-serialising them: a stored
    text that is not canonical, or any changed byte, gives a different hash.
    """
    names = sorted(set(table.column_names) - set(NOT_IN_ENVELOPE))
    keys = [canonical_json(name).decode() + ":" for name in names]
    out = []
    for row in table.sort_by("position").to_pylist():
        members = [key + (row[name] if name in STORED_AS_JSON
                          else canonical_json(row[name]).decode())
                   for key, name in zip(keys, names, strict=True)]
        out.append((row["artifact_id"], sha256_hex(("{" + ",".join(members) + "}").encode())))
    return out
