"""Batch ingest: ``POST /api/v1/ingest/batches`` and its status and schema."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import State
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sreagent.api.auth import Principal, authenticate
from sreagent.api.deps import ControllerDep, IngestScope, LeaderOnly, ReadScope, require_leader
from sreagent.api.errors import error_response, internal_error_response
from sreagent.controller.errors import Overloaded
from sreagent.controller.service import Controller
from sreagent.errors import BadInput, LimitExceeded, SreagentError
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
    return await _collect_body(request.headers.get("content-length"), request.stream())


async def _collect_body(declared: str | None, chunks_in: AsyncIterator[bytes]) -> bytes:
    if declared and declared.isdigit() and int(declared) > b.MAX_BODY_BYTES:
        raise LimitExceeded(f"body of {declared} bytes, at most {b.MAX_BODY_BYTES} allowed")
    chunks, size = [], 0
    async for chunk in chunks_in:
        size += len(chunk)
        if size > b.MAX_BODY_BYTES:
            raise LimitExceeded(f"body larger than {b.MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _ingest(
    controller: Controller,
    who: Principal,
    headers: Mapping[str, str],
    read_body: Callable[[], Awaitable[bytes]],
) -> dict[str, Any]:
    """The whole endpoint after authentication: read, decode, deduplicate, make durable."""
    ingest = controller.ingest
    try:
        body = await read_body()
        content_type = headers.get("content-type", "")
        content_encoding = headers.get("content-encoding")
        frame, digest, keys_digest = await ingest.decode_body(body, content_type,
                                                              content_encoding)
        return await ingest.accept(
            frame,
            digest,
            actor=who.name,
            body=body,
            content_type=content_type,
            content_encoding=content_encoding,
            keys_digest=keys_digest,
        )
    except (BadInput, Overloaded) as err:
        ingest.reject(err.code, str(err))
        raise


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
    """Validate, deduplicate and journal one batch; answer once it is durable.

    Traffic to this path is served by :class:`IngestFastPath` (same checks and answers); this
    route is the endpoint's OpenAPI description and serves it if that middleware is absent."""
    started = time.perf_counter()
    ack = await _ingest(controller, who, request.headers, lambda: _read_body(request))
    request.app.state.ack_histogram.observe(time.perf_counter() - started)
    return Ack(**ack)


INGEST_PATH = "/api/v1/ingest/batches"


class IngestFastPath:
    """``POST /api/v1/ingest/batches`` as plain ASGI, ahead of FastAPI.

    Telemetry hooks, middleware, routing, dependency injection and response validation cost
    about as much CPU per batch as the controller's own share of ingest (profiled at 200
    collectors); the collectors' hot path skips them (the app hands these requests here
    first, ``sreagent.api.app``). Everything else is the route's: the same token check and
    scope, the leader check, the body limits, :func:`_ingest`, and errors answered by
    :func:`sreagent.api.errors.error_response`.
    """

    def __init__(self, state: State):
        self.state = state

    @staticmethod
    def serves(scope: Scope) -> bool:
        return bool(scope["type"] == "http" and scope["path"] == INGEST_PATH
                    and scope["method"] == "POST")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        controller: Controller = self.state.controller
        response: Response
        try:
            who = authenticate(self.state.settings, headers.get("authorization"))
            who.require("ingest")
            await require_leader(controller)
            ack = await _ingest(controller, who, headers,
                                lambda: _collect_body(headers.get("content-length"),
                                                      _receive_body(receive)))
            self.state.ack_histogram.observe(time.perf_counter() - started)
            response = JSONResponse(ack)
        except _Disconnected:
            return
        except SreagentError as err:
            response = error_response(err)
        except Exception as err:
            response = internal_error_response(err, "POST", INGEST_PATH)
        await response(scope, receive, send)


class _Disconnected(Exception):
    """The client went away before its body arrived."""


async def _receive_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


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
        "decode_workers": (controller.ingest.decoders.stats()
                           if controller.ingest.decoders is not None else {"workers": 0}),
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
