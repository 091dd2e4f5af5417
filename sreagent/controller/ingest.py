"""Ingest: validate, deduplicate, journal, then hot state, and answer the collector.

Dedupe is on (collector_id, producer_epoch, seq), i.e. ``frame.batch_id``, compared by the
encoding-independent :func:`~sreagent.telemetry.batch_digest`. It is durable: a receipt row
per accepted batch lives in the run store, written right after the journal flush that made
the batch durable. At start-up :meth:`Ingest.reconcile` adds a receipt for any batch the
journal holds but the store does not (a crash between the two), so the receipts always cover
the journal and a resend after a crash is answered ``duplicate``, never journalled twice.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from sreagent.controller.decoders import DecodePool
from sreagent.controller.errors import BatchConflict
from sreagent.controller.hotstate import HotState, series_keys_digest
from sreagent.controller.journal import GroupCommitJournal, PendingBatch, recover_wal
from sreagent.controller.store import RunStore
from sreagent.evidence import Journal
from sreagent.evidence.tables import BATCHES_SCHEMA
from sreagent.telemetry import batch_digest, decode_batch
from sreagent.telemetry.arrow import BatchFrame

log = logging.getLogger(__name__)
_RECEIPT_COLUMNS = (
    "batch_id",
    "collector_id",
    "producer_epoch",
    "seq",
    "host",
    "digest",
    "sample_count",
)


@dataclass
class IngestCounters:
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    processes: int = 0
    events: int = 0
    last_batch_id: str = ""
    last_collector_id: str = ""
    last_accepted_at_ns: int = 0
    last_error: str = ""


class _RecentKeys:
    """Bounded map batch_id -> digest of recently accepted batches (the fast path).

    A miss costs nothing in correctness: the journal's commit thread looks the key up among
    the durable receipts. So the map only needs to cover the usual resend (an acknowledgement
    lost, the batch sent again seconds later) and stays small: it is full within minutes, after
    which memory does not grow with it. Digests are kept as their 32 raw bytes."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._data: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> str | None:
        digest = self._data.get(key)
        return None if digest is None else digest.hex()

    def put(self, key: str, digest: str) -> None:
        self._data[key] = bytes.fromhex(digest)
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)


class _Completions:
    """Hands the journal thread's finished futures to the event loop in batches.

    ``asyncio.wrap_future`` costs one ``call_soon_threadsafe`` (a loop wake-up, a syscall
    under the GIL) per future; a group commit finishes dozens at once. Here the first
    completion of a burst schedules one drain on the loop and the rest join its queue, so a
    group costs one wake-up instead of one per batch.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._lock = threading.Lock()
        self._done: list[tuple[asyncio.Future[Any], Future[Any]]] = []

    def wrap(self, future: Future[Any]) -> asyncio.Future[Any]:
        waiter: asyncio.Future[Any] = self._loop.create_future()
        future.add_done_callback(lambda f: self._finished(waiter, f))
        return waiter

    def _finished(self, waiter: asyncio.Future[Any], future: Future[Any]) -> None:
        with self._lock:
            self._done.append((waiter, future))
            if len(self._done) > 1:
                return  # a drain is already scheduled and will take this one too
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed (shutdown): nobody is waiting any more
            with self._lock:
                self._done.clear()

    def _drain(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        for waiter, future in done:
            if waiter.cancelled():
                continue
            error = future.exception()
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(future.result())


class Ingest:
    """The ingest pipeline of one controller (leader)."""

    def __init__(
        self,
        *,
        store: RunStore,
        journal: Journal,
        hot: HotState,
        make_group_commit: Callable[[Callable[[list[PendingBatch]], None]], GroupCommitJournal],
        on_accepted: Callable[[list[BatchFrame]], None] | None = None,
        clock: Callable[[], int] = time.time_ns,
        recent_keys: int = 4096,
    ):
        self.store = store
        self.journal = journal
        self.hot = hot
        self.clock = clock
        self.counters = IngestCounters()
        self._recent = _RecentKeys(recent_keys)
        self._inflight: dict[str, tuple[str, asyncio.Future[bool]]] = {}
        self._on_accepted = on_accepted
        self._completions: _Completions | None = None
        self.group_commit = make_group_commit(self._durable)
        self.decoders: DecodePool | None = None

    async def start_decoders(self, workers: int) -> None:
        """Decode in ``workers`` child processes from now on (0: in threads of this one)."""
        if workers:
            pool = DecodePool(workers)
            await pool.start()
            self.decoders = pool

    async def stop_decoders(self) -> None:
        pool, self.decoders = self.decoders, None
        if pool is not None:
            await pool.close()

    # --- the request path ----------------------------------------------------------------------

    @staticmethod
    def decode(
        body: bytes, content_type: str, content_encoding: str | None
    ) -> tuple[BatchFrame, str]:
        """Decode, validate and digest a body (CPU work; runs in a worker thread)."""
        frame = decode_batch(body, content_type, content_encoding)
        return frame, batch_digest(frame)

    async def decode_body(
        self, body: bytes, content_type: str, content_encoding: str | None
    ) -> tuple[BatchFrame, str, bytes | None]:
        """:meth:`decode` in a decode worker process when there are any, else in a thread;
        with the samples' :func:`~sreagent.controller.hotstate.series_keys_digest`."""
        if self.decoders is not None:
            return await self.decoders.decode(body, content_type, content_encoding)
        return await asyncio.to_thread(self._decode_with_keys, body, content_type,
                                       content_encoding)

    @classmethod
    def _decode_with_keys(cls, body: bytes, content_type: str,
                          content_encoding: str | None) -> tuple[BatchFrame, str, bytes | None]:
        frame, digest = cls.decode(body, content_type, content_encoding)
        return frame, digest, series_keys_digest(frame.samples)

    async def accept(
        self,
        frame: BatchFrame,
        digest: str,
        *,
        actor: str,
        body: bytes,
        content_type: str,
        content_encoding: str | None,
        keys_digest: bytes | None = None,
    ) -> dict[str, Any]:
        """Deduplicate and make durable; return the acknowledgement body. ``keys_digest``
        (from :meth:`decode_body`) lets hot state reuse the host's last grouping."""
        key = frame.batch_id
        while True:
            known = self._recent.get(key)
            if known is None and key in self._inflight:
                other_digest, done = self._inflight[key]
                if await asyncio.shield(done):
                    known = other_digest
                else:
                    continue  # the first attempt failed; this one may try again
            if known is None:
                loop = asyncio.get_running_loop()
                done = loop.create_future()
                self._inflight[key] = (digest, done)
                try:
                    # The journal's commit thread looks the key up among durable receipts for
                    # its whole round (one query) and answers the stored digest if found.
                    item = PendingBatch(frame, digest, body, content_type, content_encoding,
                                        keys_digest=keys_digest)
                    known = await self._waiter(self.group_commit.submit(item))
                    if known is None:
                        done.set_result(True)
                        return self._ack(frame, "accepted", digest)
                    self._recent.put(key, known)
                    done.set_result(False)
                except BaseException:
                    if not done.done():
                        done.set_result(False)
                    raise
                finally:
                    self._inflight.pop(key, None)
            if known == digest:
                self.counters.duplicates += 1
                return self._ack(frame, "duplicate", digest)
            self.counters.conflicts += 1
            await asyncio.to_thread(
                self.store.audit,
                actor,
                "ingest_conflict",
                key,
                {
                    "stored_digest": known,
                    "received_digest": digest,
                    "host": frame.header.host,
                    "samples": frame.samples.num_rows,
                },
            )
            raise BatchConflict(
                f"batch {key} was already accepted with different content (digest "
                f"{known[:12]}…, this one {digest[:12]}…); a collector must never reuse "
                "(collector_id, producer_epoch, seq) for new data",
                field="seq",
            )

    def _waiter(self, future: Future[str | None]) -> asyncio.Future[str | None]:
        loop = asyncio.get_running_loop()
        if self._completions is None or self._completions._loop is not loop:
            self._completions = _Completions(loop)  # one per loop (tests run several)
        return self._completions.wrap(future)

    def reject(self, code: str, message: str) -> None:
        self.counters.rejected[code] = self.counters.rejected.get(code, 0) + 1
        self.counters.last_error = message[:500]

    @staticmethod
    def _ack(frame: BatchFrame, status: str, digest: str) -> dict[str, Any]:
        header = frame.header
        return {
            "status": status,
            "collector_id": header.collector_id,
            "producer_epoch": header.producer_epoch,
            "seq": header.seq,
            "batch_id": frame.batch_id,
            "samples": frame.samples.num_rows,
            "processes": frame.processes.num_rows,
            "events": frame.events.num_rows,
            "digest": digest,
        }

    # --- after the flush (flusher thread) --------------------------------------------------------

    def _durable(self, group: list[PendingBatch]) -> None:
        now = self.clock()
        self.store.insert_receipts(
            [
                {
                    "batch_id": p.frame.batch_id,
                    "collector_id": p.frame.header.collector_id,
                    "producer_epoch": p.frame.header.producer_epoch,
                    "seq": p.frame.header.seq,
                    "host": p.frame.header.host,
                    "digest": p.digest,
                    "samples": p.frame.samples.num_rows,
                    "accepted_at_ns": now,
                }
                for p in group
            ]
        )
        c = self.counters
        for p in group:
            self._recent.put(p.frame.batch_id, p.digest)
            self.hot.append(p.frame, p.keys_digest)
            c.accepted += 1
            c.samples += p.frame.samples.num_rows
            c.processes += p.frame.processes.num_rows
            c.events += p.frame.events.num_rows
        last = group[-1].frame
        c.last_batch_id, c.last_collector_id = last.batch_id, last.header.collector_id
        c.last_accepted_at_ns = now
        if self._on_accepted is not None:
            try:
                self._on_accepted([p.frame for p in group])
            except Exception:  # detection must never fail an acknowledged batch
                log.exception("incident detection failed after a flush")

    # --- start-up ------------------------------------------------------------------------------

    def _journal_batches(self, columns: list[str]) -> pa.Table:
        files = self.journal.files("batches")
        if not files:
            return BATCHES_SCHEMA.empty_table().select(columns)
        dataset = ds.dataset(files, schema=BATCHES_SCHEMA, format="parquet")
        return dataset.to_table(columns=columns)

    def recover(self, writer_id: str) -> int:
        """Replay the WAL a crash left into Parquet, then reconcile receipts."""
        recovered = recover_wal(
            self.journal.root,
            lambda: set(self._journal_batches(["batch_id"]).column("batch_id").to_pylist()),
            writer_id=writer_id,
        )
        self.reconcile()
        return recovered

    def reconcile(self) -> int:
        """Add receipts for journalled batches the store lacks; return how many were added.

        Reads only the identity columns of the journal's ``batches`` table (one row per batch),
        so start-up cost grows with the number of batches retained, not with their samples.
        """
        batches = self._journal_batches(list(_RECEIPT_COLUMNS))
        if batches.num_rows == 0:
            return 0
        ids = batches.column("batch_id").to_pylist()
        known = self.store.known_batch_ids(ids)
        missing = [r for r in batches.to_pylist() if r["batch_id"] not in known]
        now = self.clock()
        self.store.insert_receipts(
            [
                {
                    "batch_id": r["batch_id"],
                    "collector_id": r["collector_id"],
                    "producer_epoch": r["producer_epoch"],
                    "seq": r["seq"],
                    "host": r["host"],
                    "digest": r["digest"],
                    "samples": r["sample_count"],
                    "accepted_at_ns": now,
                }
                for r in missing
            ]
        )
        if missing:
            log.warning("added %d receipts for batches journalled before a crash", len(missing))
        return len(missing)
