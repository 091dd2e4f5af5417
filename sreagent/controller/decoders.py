"""Decode workers: child processes that decode, validate and digest ingest bodies.

One controller process is bound by one GIL, and decoding a batch (decompress, Arrow IPC,
validation of every row, the canonical digest) is the largest CPU cost per batch. A
:class:`DecodePool` runs ``ingest.decode_workers`` children (``python -m
sreagent.controller._decode_worker``) and hands each body to the least busy one over its
stdin; the answer comes back on its stdout. The controller process keeps what needs shared
state: dedupe, the write-ahead log, receipts, hot state and detection. Nothing is acknowledged
by a worker, so a worker that dies loses nothing: its requests in flight are answered 503
(retry) and a new worker takes its place.

Protocol (little-endian; private to this module and the worker):
request ``<id u32><body_len u32><type_len u16><encoding_len u16>`` + content type +
content encoding + body; response ``<id u32><status u8><len u32>`` + payload, where status 0
carries the 64-character digest, the header as JSON, one Arrow IPC stream per table (each
behind a u32 length, 0 for an empty table) and the series keys digest (u32 length, 0 without
samples), status 1 a refused body's error as JSON (class,
code, message, field, path) and status 2 an unexpected error's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from sreagent.controller._decode_worker import (
    CRASHED,
    OK,
    REFUSED,
    REQUEST,
    RESPONSE,
    SECTION,
    TABLES,
)
from sreagent.controller.errors import Overloaded  # also registers its classes for _error_class
from sreagent.errors import BadInput, SreagentError
from sreagent.telemetry.arrow import BatchFrame, BatchHeader, _rows_table

log = logging.getLogger(__name__)
DIGEST_LEN = 64


class DecodeWorkerError(RuntimeError):
    """A worker failed on a body in a way that is a bug, not bad input (HTTP 500)."""


def frame_from_payload(payload: bytes) -> tuple[BatchFrame, str, bytes | None]:
    """Rebuild the worker's validated frame, digest and series keys digest (no second
    validation of the rows)."""
    view = memoryview(payload)
    digest = bytes(view[:DIGEST_LEN]).decode("ascii")
    pos = DIGEST_LEN
    (size,) = SECTION.unpack_from(view, pos)
    header = BatchHeader.model_validate_json(bytes(view[pos + SECTION.size: pos + SECTION.size + size]))
    pos += SECTION.size + size
    tables: dict[str, pa.Table] = {}
    for name in TABLES:
        (size,) = SECTION.unpack_from(view, pos)
        pos += SECTION.size
        if size:
            tables[name] = ipc.open_stream(pa.py_buffer(view[pos: pos + size])).read_all()
        else:
            tables[name] = _rows_table(name, [])
        pos += size
    frame = BatchFrame(header=header, **tables)
    (size,) = SECTION.unpack_from(view, pos)
    pos += SECTION.size
    keys_digest = bytes(view[pos: pos + size]) or None
    return frame, digest, keys_digest


def _error_class(name: str) -> type[SreagentError]:
    pending: list[type[SreagentError]] = [SreagentError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == name:
            return cls
        pending.extend(cls.__subclasses__())
    return BadInput


def error_from_payload(payload: bytes) -> SreagentError:
    """The worker's refusal as the same error class, message and field."""
    data = json.loads(payload)
    return _error_class(data["class"])(data["message"], field=data.get("field"),
                                       path=data.get("path"))


@dataclass
class _Worker:
    number: int
    process: asyncio.subprocess.Process
    pending: dict[int, asyncio.Future[tuple[int, bytes]]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None


class DecodePool:
    """``workers`` decode processes; :meth:`decode` is what the ingest route awaits."""

    def __init__(self, workers: int, *, python: str = sys.executable):
        if workers < 1:
            raise ValueError("a decode pool needs at least one worker")
        self.size = workers
        self.python = python
        self.restarts = 0
        self.decoded = 0
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._closing = False

    async def start(self) -> None:
        for number in range(self.size):
            self._workers.append(await self._spawn(number))

    async def _spawn(self, number: int) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            self.python, "-m", "sreagent.controller._decode_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=2**26,  # one response may be a whole decoded batch
        )
        worker = _Worker(number, process)
        worker.reader = asyncio.get_running_loop().create_task(
            self._read(worker), name=f"decode-worker-{number}")
        return worker

    async def _read(self, worker: _Worker) -> None:
        stdout = worker.process.stdout
        assert stdout is not None
        try:
            while True:
                head = await stdout.readexactly(RESPONSE.size)
                request_id, status, size = RESPONSE.unpack(head)
                payload = await stdout.readexactly(size) if size else b""
                future = worker.pending.pop(request_id, None)
                if future is not None and not future.done():
                    future.set_result((status, payload))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        code = await worker.process.wait()
        for future in worker.pending.values():
            if not future.done():
                future.set_exception(Overloaded(
                    f"decode worker {worker.number} exited (code {code}) while decoding this "
                    "batch; nothing was accepted, send it again"))
        worker.pending.clear()
        if not self._closing:
            log.error("decode worker %d exited with code %s; starting a new one",
                      worker.number, code)
            self.restarts += 1
            replacement = await self._spawn(worker.number)
            self._workers[worker.number] = replacement

    async def decode(
        self, body: bytes, content_type: str, content_encoding: str | None
    ) -> tuple[BatchFrame, str, bytes | None]:
        """Decode, validate and digest ``body`` in a worker (with the samples' series keys
        digest for hot state);
        raises what :func:`~sreagent.telemetry.decode_batch` would raise, with the same
        message and field."""
        if not self._workers:
            raise Overloaded("the decode workers are not running; send the batch again")
        worker = min(self._workers, key=lambda w: len(w.pending))
        request_id = next(self._ids) & 0xFFFFFFFF
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        worker.pending[request_id] = future
        kind = content_type.encode()[:0xFFFF]
        encoding = (content_encoding or "").encode()[:0xFFFF]
        stdin = worker.process.stdin
        assert stdin is not None
        try:
            stdin.write(REQUEST.pack(request_id, len(body), len(kind), len(encoding)))
            stdin.write(kind + encoding)
            stdin.write(body)
            await stdin.drain()
        except (ConnectionError, RuntimeError):
            worker.pending.pop(request_id, None)
            if future.done():
                future.exception()  # the reader failed it already: retrieved, not logged
            raise Overloaded(f"decode worker {worker.number} is restarting; send the batch "
                             "again") from None
        status, payload = await future
        if status == OK:
            self.decoded += 1
            return frame_from_payload(payload)
        if status == REFUSED:
            raise error_from_payload(payload)
        assert status == CRASHED
        raise DecodeWorkerError(payload.decode(errors="replace"))

    def stats(self) -> dict[str, Any]:
        return {
            "workers": self.size,
            "restarts": self.restarts,
            "in_flight": sum(len(w.pending) for w in self._workers),
            "decoded": self.decoded,
            "pids": [w.process.pid for w in self._workers],
        }

    async def close(self) -> None:
        self._closing = True
        for worker in self._workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.process.wait(), timeout=5)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
            if worker.reader is not None:
                worker.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker.reader
        self._workers.clear()
