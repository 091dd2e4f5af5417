"""Group commit into the evidence journal, and background compaction of its part files.

Ingest requests hand their decoded batch to :class:`GroupCommitJournal` and wait. One flusher
thread takes everything queued since its last flush, appends it to a
:class:`~sreagent.evidence.JournalWriter`, flushes (atomic, fsynced part files), then runs the
``on_durable`` callback (receipts, hot state, detection) and only then releases the waiting
requests. Requests that arrive during a flush share the next one, so the flush rate adapts to
load: one request alone is flushed at once, many are flushed together. Memory is bounded by
``max_pending`` batches; beyond it ingest answers 503 (:class:`Overloaded`) instead of growing.

Compaction merges a partition's small part files into one. The merged file lists the files it
replaces in its Parquet metadata and is written (atomically) before they are deleted, so a
crash in between is finished at the next start (:func:`finish_interrupted_compactions`): rows
are never lost, and never counted twice once the controller has started.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sreagent.controller.errors import Overloaded
from sreagent.evidence import JournalWriter, atomic_write_parquet
from sreagent.evidence.journal import JOURNAL_TABLES
from sreagent.telemetry.arrow import BatchFrame

log = logging.getLogger(__name__)
COMPACTED_KEY = b"sreagent.compacted_from"


@dataclass
class PendingBatch:
    frame: BatchFrame
    digest: str
    submitted_at: float
    future: Future[None] = field(default_factory=Future)


class GroupCommitJournal:
    """Durable, batched appends to the journal. Thread-safe; one flusher thread."""

    def __init__(self, root: Path, *, writer_id: str,
                 on_durable: Callable[[list[PendingBatch]], None], max_pending: int = 2000,
                 on_flush: Callable[[int, float], None] | None = None):
        self.root = Path(root)
        self._writer = JournalWriter(self.root, writer_id=writer_id)
        self._on_durable = on_durable
        self._on_flush = on_flush
        self._max_pending = max_pending
        self._queue: list[PendingBatch] = []
        self._cond = threading.Condition()
        self._stopping = False
        self.flushes = 0
        self.last_flush_at = 0.0
        self._thread = threading.Thread(target=self._run, name="journal-flusher", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def submit(self, frame: BatchFrame, digest: str) -> Future[None]:
        """Queue a batch; the future completes once it is durable (or with the flush error)."""
        item = PendingBatch(frame, digest, time.monotonic())
        with self._cond:
            if self._stopping:
                raise Overloaded("the controller is shutting down; retry against another one")
            if len(self._queue) >= self._max_pending:
                raise Overloaded(
                    f"{len(self._queue)} batches are waiting for the journal; retry shortly"
                )
            self._queue.append(item)
            self._cond.notify()
        return item.future

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue and self._stopping:
                    return
                group, self._queue = self._queue, []
            self._flush(group)

    def _flush(self, group: list[PendingBatch]) -> None:
        started = time.monotonic()
        try:
            for item in group:
                self._writer.append(item.frame, item.digest)
            self._writer.flush()
            self._on_durable(group)
        except BaseException as err:  # noqa: BLE001 - every waiter must hear about it
            log.exception("journal flush of %d batches failed", len(group))
            # Start from a clean buffer: nothing of this group was acknowledged.
            self._writer = JournalWriter(self.root, writer_id=self._writer.writer_id + "r")
            for item in group:
                item.future.set_exception(err)
            return
        self.flushes += 1
        self.last_flush_at = time.time()
        if self._on_flush is not None:
            self._on_flush(len(group), time.monotonic() - started)
        for item in group:
            item.future.set_result(None)


# --- compaction ------------------------------------------------------------------------------


def _compacted_from(path: Path) -> list[str]:
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(COMPACTED_KEY)
    return list(json.loads(raw)) if raw else []


def finish_interrupted_compactions(root: Path) -> int:
    """Delete part files that a compacted file already holds (left by a crash); return how many."""
    removed = 0
    for table in JOURNAL_TABLES:
        for merged in (Path(root) / table).glob("*/*/compact-*.parquet"):
            for name in _compacted_from(merged):
                source = merged.parent / name
                if source.exists():
                    source.unlink()
                    removed += 1
    return removed


def compact(root: Path, *, min_files: int, writer_id: str,
            skip_newer_than_s: float = 5.0) -> int:
    """Merge partitions holding ``min_files`` or more part files; return files merged.

    Files younger than ``skip_newer_than_s`` are left alone so compaction never races the
    flusher on a file being renamed into place.
    """
    merged_count = 0
    now = time.time()
    for table, schema in JOURNAL_TABLES.items():
        for folder in sorted((Path(root) / table).glob("*/*")):
            parts = sorted(p for p in folder.glob("*.parquet")
                           if not p.name.startswith(".") and now - p.stat().st_mtime
                           > skip_newer_than_s)
            if len(parts) < min_files:
                continue
            merged = pa.concat_tables([pq.read_table(p, schema=schema) for p in parts])
            metadata = {COMPACTED_KEY: json.dumps([p.name for p in parts]).encode()}
            target = folder / f"compact-{writer_id}-{int(now * 1e3)}-{len(parts)}.parquet"
            atomic_write_parquet(target, merged.replace_schema_metadata(metadata))
            for p in parts:
                p.unlink()
            merged_count += len(parts)
    return merged_count
