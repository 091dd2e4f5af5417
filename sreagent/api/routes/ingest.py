"""Batch ingest: ``POST /api/v1/ingest/batches`` and its status and schema."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from sreagent.api.deps import ControllerDep, IngestScope, LeaderOnly, ReadScope
from sreagent.controller.errors import Overloaded
from sreagent.errors import BadInput, LimitExceeded
from sreagent.telemetry import SCHEMA_VERSION, Batch
from sreagent.telemetry import batch as b
from sreagent.telemetry.arrow import BATCH_SCHEMA
from sreagent.telemetry.wire import ARROW_CONTENT_TYPE, CONTENT_ENCODINGS, CONTENT_TYPES

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"])


class Ack(BaseModel):
    """The acknowledgement a collector advances its spool on."""

    status: str
    """``accepted`` (now durable in the journal) or ``duplicate`` (it already was)."""
    collector_id: str
    producer_epoch: str
    seq: int
    batch_id: str
    samples: int
    processes: int
    events: int
    digest: str


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > b.MAX_BODY_BYTES:
        raise LimitExceeded(f"body of {declared} bytes, at most {b.MAX_BODY_BYTES} allowed")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > b.MAX_BODY_BYTES:
            raise LimitExceeded(f"body larger than {b.MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/batches",
    response_model=Ack,
    dependencies=[LeaderOnly],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                ARROW_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def post_batch(request: Request, controller: ControllerDep, who: IngestScope) -> Ack:
    """Validate, deduplicate and journal one batch; answer once it is durable."""
    started = time.perf_counter()
    ingest = controller.ingest
    try:
        body = await _read_body(request)
        content_type = request.headers.get("content-type", "")
        content_encoding = request.headers.get("content-encoding")
        frame, digest = await asyncio.to_thread(ingest.decode, body, content_type, content_encoding)
        ack = await ingest.accept(
            frame,
            digest,
            actor=who.name,
            body=body,
            content_type=content_type,
            content_encoding=content_encoding,
        )
    except BadInput as err:
        ingest.reject(err.code, str(err))
        raise
    except Overloaded as err:
        ingest.reject(err.code, str(err))
        raise
    request.app.state.ack_histogram.observe(time.perf_counter() - started)
    return Ack(**ack)


@router.get("/status")
def ingest_status(controller: ControllerDep, _: ReadScope) -> dict[str, Any]:
    """Counters: accepted, duplicates, conflicts, rejects by reason, totals, last batch;
    receipts in the store; hot state per host."""
    c = controller.ingest.counters
    return {
        "accepted": c.accepted,
        "duplicates": c.duplicates,
        "conflicts": c.conflicts,
        "rejected": dict(c.rejected),
        "samples": c.samples,
        "processes": c.processes,
        "events": c.events,
        "last_batch_id": c.last_batch_id,
        "last_collector_id": c.last_collector_id,
        "last_accepted_at_ns": c.last_accepted_at_ns,
        "last_error": c.last_error,
        "receipts": controller.store.receipt_stats(),
        "journal": _journal_status(controller),
        "hot_state": controller.hot.stats(),
        "hosts": controller.hot.hosts(),
    }


def _journal_status(controller: ControllerDep) -> dict[str, Any]:
    journal = controller.ingest.group_commit
    return {
        "pending_batches": journal.pending,
        "group_commits": journal.group_commits,
        "buffered_rows": journal.buffered_rows,
        "parquet_flushes": journal.parquet_flushes,
        "last_parquet_flush_at": journal.last_flush_at,
    }


@router.get("/schema")
def ingest_schema(_: ReadScope) -> dict[str, Any]:
    """What the ingest endpoint accepts: version, encodings, limits, and both schemas."""
    return {
        "schema_version": SCHEMA_VERSION,
        "content_types": list(CONTENT_TYPES),
        "content_encodings": list(CONTENT_ENCODINGS),
        "dedupe_key": ["collector_id", "producer_epoch", "seq"],
        "limits": {
            name.lower(): getattr(b, name)
            for name in dir(b)
            if name.startswith("MAX_") and isinstance(getattr(b, name), int)
        },
        "patterns": {
            "metric": b.METRIC_PATTERN,
            "label_key": b.LABEL_KEY_PATTERN,
            "id": b.ID_PATTERN,
            "event_kind": b.EVENT_KIND_PATTERN,
        },
        "arrow_schema": BATCH_SCHEMA.to_string(show_schema_metadata=False),
        "json_schema": Batch.model_json_schema(),
    }
