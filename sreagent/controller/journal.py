"""The controller's side of the evidence journal: a write-ahead log for durable
acknowledgements, buffered Parquet part files, and background compaction.

Why a write-ahead log: making each batch durable directly as Parquet costs a file and two
fsyncs per table and batch, and small files are slow to write and to read. With hundreds of
collectors that is hundreds of fsyncs per acknowledgement round. Instead:

1. **Group commit to the WAL.** One flusher thread takes every batch queued since its last
   round, appends their wire bodies to the current WAL segment (``<journal>/_wal/``, CRC'd
   records) and fsyncs once. Only then are the waiting requests acknowledged. Requests that
   arrive during a round share the next one.
2. **Parquet on size or time.** Acknowledged batches stay buffered (bounded by
   ``journal.buffer_rows``) and are written as Hive-partitioned part files every
   ``journal.flush_interval_s`` or when the buffer is full, through
   :class:`sreagent.evidence.JournalWriter` (one file per table and hour, rows sorted by
   host, one ``syncfs`` per flush). The WAL segments a Parquet flush covers are deleted after it.
3. **Recovery.** At start-up, WAL segments left by a crash are replayed into Parquet (batches
   the Parquet journal already has are skipped) and then deleted, so the journal holds every
   acknowledged batch exactly once. A torn last record (the crash hit mid-write) was never
   fsynced, hence never acknowledged, and is ignored.

Compaction merges a partition's small part files (quiet hours, restarts, WAL recovery) into
larger ones, at most ``journal.compact_max_rows`` rows at a time. The merged file lists the files it
replaces in its Parquet metadata and is written (atomically) before they are deleted, so a
crash in between is finished at the next start (:func:`finish_interrupted_compactions`).
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from sreagent.atomic import atomic_write, fsync_dir
from sreagent.controller.errors import Overloaded
from sreagent.evidence.journal import (
    JOURNAL_TABLES,
    ROW_GROUP_ROWS,
    JournalWriter,
    folder_layout,
    merge_parts,
)
from sreagent.telemetry import decode_batch
from sreagent.telemetry.arrow import BatchFrame

log = logging.getLogger(__name__)
COMPACTED_KEY = b"sreagent.compacted_from"
WAL_DIR = "_wal"
_RECORD = struct.Struct(">4sIII")  # magic, header length, body length, crc32
_MAGIC = b"SRW1"


_ACTIVITY: collections.deque[dict[str, Any]] = collections.deque(maxlen=2000)
_ACTIVITY_LOCK = threading.Lock()


def _record_activity(kind: str, started: float, seconds: float, **figures: object) -> None:
    with _ACTIVITY_LOCK:
        _ACTIVITY.append({"kind": kind, "wall": round(started, 3),
                          "seconds": round(seconds, 3),
                          "thread": threading.current_thread().name, **figures})


def journal_activity() -> list[dict[str, Any]]:
    """The last 2,000 Parquet flushes and compactions of this process (kind, wall-clock
    start, seconds, thread, rows, files), oldest first: lets a memory profile match RSS steps to
    them (``sreagent.controller.memprofile``)."""
    with _ACTIVITY_LOCK:
        return list(_ACTIVITY)


@dataclass
class PendingBatch:
    frame: BatchFrame
    digest: str
    body: bytes
    content_type: str
    content_encoding: str | None
    keys_digest: bytes | None = None
    """The samples' series keys digest (hot state only; not written)."""
    submitted_at: float = field(default_factory=time.monotonic)
    future: Future[str | None] = field(default_factory=Future)
    """None once the batch is durable; the stored digest when ``known`` found a receipt."""


# --- write-ahead log -------------------------------------------------------------------------


class Wal:
    """Append-only segment files of CRC'd records: (header JSON, wire body)."""

    def __init__(self, directory: Path, writer_id: str):
        self.directory = directory
        self.writer_id = writer_id
        directory.mkdir(parents=True, exist_ok=True)
        self._counter = 0
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._closed: list[Path] = []

    def _open(self) -> None:
        self._counter += 1
        self._path = self.directory / f"wal-{self.writer_id}-{self._counter:08d}.log"
        self._file = open(self._path, "ab", buffering=0)  # noqa: SIM115 - kept open
        fsync_dir(self.directory)

    def append(self, items: list[PendingBatch]) -> None:
        """Write records for ``items`` and fsync: after this they survive a crash."""
        if self._file is None:
            self._open()
        chunks = []
        for item in items:
            header = json.dumps(
                {
                    "content_type": item.content_type,
                    "content_encoding": item.content_encoding,
                    "digest": item.digest,
                    "batch_id": item.frame.batch_id,
                },
                separators=(",", ":"),
            ).encode()
            crc = zlib.crc32(item.body, zlib.crc32(header))
            chunks += [_RECORD.pack(_MAGIC, len(header), len(item.body), crc), header, item.body]
        assert self._file is not None
        fd = self._file.fileno()
        os.write(fd, b"".join(chunks))
        os.fsync(fd)

    def rotate(self) -> list[Path]:
        """Close the current segment; return every closed segment not yet released."""
        if self._file is not None:
            self._file.close()
            assert self._path is not None
            self._closed.append(self._path)
            self._file = None
        closed, self._closed = self._closed, []
        return closed

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @staticmethod
    def records(path: Path) -> Iterator[tuple[dict[str, str | None], bytes]]:
        """The intact records of a segment; stops at a torn or corrupt tail."""
        data = path.read_bytes()
        offset = 0
        while offset + _RECORD.size <= len(data):
            magic, hlen, blen, crc = _RECORD.unpack_from(data, offset)
            start = offset + _RECORD.size
            end = start + hlen + blen
            if magic != _MAGIC or end > len(data):
                break
            header, body = data[start : start + hlen], data[start + hlen : end]
            if zlib.crc32(body, zlib.crc32(header)) != crc:
                break
            yield json.loads(header), body
            offset = end
        if offset != len(data):
            log.warning(
                "%s: ignoring %d bytes of torn WAL tail (never acknowledged)",
                path,
                len(data) - offset,
            )


# --- Parquet part files ------------------------------------------------------------------------


# --- the group-commit journal ----------------------------------------------------------------


class GroupCommitJournal:
    """Durable (WAL) acknowledgements and buffered Parquet. Thread-safe."""

    def __init__(
        self,
        root: Path,
        *,
        writer_id: str,
        on_durable: Callable[[list[PendingBatch]], None],
        max_pending: int = 2000,
        buffer_rows: int = 2_000_000,
        flush_interval_s: float = 30.0,
        on_flush: Callable[[int, float], None] | None = None,
        known: Callable[[list[str]], dict[str, str]] | None = None,
    ):
        self.root = Path(root)
        self._known = known
        """Digests of batch ids already accepted (durable receipts), asked once per round for
        the whole group instead of once per request."""
        self.writer_id = writer_id
        self.wal = Wal(self.root / WAL_DIR, writer_id)
        self._on_durable = on_durable
        self._on_flush = on_flush
        self._max_pending = max_pending
        self._buffer_rows = buffer_rows
        self._interval = flush_interval_s
        self._queue: list[PendingBatch] = []
        self._cond = threading.Condition()
        self._stopping = False
        # Held across "append to the WAL + add to the Parquet buffer" and across "swap the
        # buffer + rotate the WAL", so a WAL segment is released only with its batches.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._buffer: list[tuple[BatchFrame, str]] = []
        self.buffered_rows = 0
        self._buffer_since = time.monotonic()
        self._parquet_due = threading.Event()
        self._jobs: list[tuple[Callable[[], object], Future[object]]] | None = []
        """Work for the flushing thread; None once closed."""
        self._sequence = 0
        self.group_commits = 0
        self.parquet_flushes = 0
        self.parquet_seconds = 0.0
        self.parquet_cpu_seconds = 0.0
        """CPU time of the flushing thread (``time.thread_time``): unlike the wall time above
        it does not grow when other threads or processes take the cores."""
        self.parquet_rows = 0
        self.last_flush_at = 0.0
        self._threads = [
            threading.Thread(target=self._commit_loop, name="journal-wal", daemon=True),
            threading.Thread(target=self._parquet_loop, name="journal-parquet", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def flushes(self) -> int:
        return self.group_commits

    def submit(self, item: PendingBatch) -> Future[str | None]:
        """Queue a batch; the future completes once it is durable (or with the error)."""
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

    def run_in_flush_thread(self, job: Callable[[], object]) -> Future[object]:
        """Run ``job`` on the Parquet flushing thread, between two flushes; return its future.

        Why: work that builds Parquet files (compaction) then never overlaps a flush, so their
        memory peaks do not add up, and it reuses the memory that thread's allocators already
        hold (glibc gives every thread that allocates its own arena, and keeps what a thread
        freed for that arena: a separate compaction thread added about 8 MB of free heap the
        first time it ran). Cancelled when the journal closes first."""
        future: Future[object] = Future()
        with self._lock:
            if self._jobs is None:
                future.cancel()
                return future
            self._jobs.append((job, future))
        self._parquet_due.set()
        return future

    def _run_jobs(self) -> None:
        with self._lock:
            if not self._jobs:
                return
            jobs, self._jobs = self._jobs, []
        for job, future in jobs:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as err:  # handed to the caller, who logs it
                future.set_exception(err)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._threads[0].join(timeout=30)
        self._parquet_due.set()
        self._threads[1].join(timeout=60)
        with self._lock:
            jobs, self._jobs = self._jobs or [], None
        for _, future in jobs:
            future.cancel()
        self.flush_parquet()
        self.wal.close()

    # --- WAL rounds ----------------------------------------------------------------------------

    def _commit_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue and self._stopping:
                    return
                group, self._queue = self._queue, []
            self._commit(group)

    def _commit(self, group: list[PendingBatch]) -> None:
        started = time.monotonic()
        try:
            if self._known is not None:
                stored = self._known([p.frame.batch_id for p in group])
                if stored:
                    for p in group:
                        if p.frame.batch_id in stored:
                            p.future.set_result(stored[p.frame.batch_id])
                    group = [p for p in group if p.frame.batch_id not in stored]
                    if not group:
                        return
            with self._lock:
                self.wal.append(group)
                if not self._buffer:
                    self._buffer_since = time.monotonic()
                self._buffer.extend((p.frame, p.digest) for p in group)
                self.buffered_rows += sum(p.frame.row_count for p in group)
            self._on_durable(group)
        except BaseException as err:
            log.exception("journal commit of %d batches failed", len(group))
            for item in group:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        self.group_commits += 1
        if self._on_flush is not None:
            self._on_flush(len(group), time.monotonic() - started)
        for item in group:
            item.future.set_result(None)
        if self.buffered_rows >= self._buffer_rows:
            self._parquet_due.set()

    # --- Parquet -------------------------------------------------------------------------------

    def _parquet_loop(self) -> None:
        while not self._stopping:
            self._parquet_due.wait(timeout=min(1.0, self._interval))
            self._parquet_due.clear()
            due = self.buffered_rows >= self._buffer_rows or (
                self._buffer and time.monotonic() - self._buffer_since >= self._interval
            )
            if due:
                try:
                    self.flush_parquet()
                except Exception:  # the WAL still holds everything; retried next round
                    log.exception("journal Parquet flush failed; will retry")
            self._run_jobs()

    def flush_parquet(self) -> int:
        """Write every buffered batch as Parquet now; return how many batches were written."""
        with self._flush_lock:
            with self._lock:
                items, self._buffer = self._buffer, []
                self.buffered_rows = 0
                segments = self.wal.rotate()
            if items:
                self._sequence += 1
                started_wall = time.time()
                started, started_cpu = time.perf_counter(), time.thread_time()
                writer = JournalWriter(self.root, writer_id=self.writer_id,
                                       sequence=self._sequence - 1)
                for frame, digest in items:
                    writer.append(frame, digest)
                writer.flush()
                seconds = time.perf_counter() - started
                rows = sum(frame.row_count for frame, _ in items)
                self.parquet_seconds += seconds
                self.parquet_cpu_seconds += time.thread_time() - started_cpu
                self.parquet_rows += rows
                _record_activity("flush", started_wall, seconds, rows=rows, batches=len(items))
                self.parquet_flushes += 1
                self.last_flush_at = time.time()
            for segment in segments:
                segment.unlink(missing_ok=True)
            if segments:
                fsync_dir(self.wal.directory)
            return len(items)


def recover_wal(root: Path, known_batch_ids: Callable[[], set[str]], *, writer_id: str) -> int:
    """Replay WAL segments a crash left into Parquet, skipping batches already there; delete
    them; return how many batches were written. Segments of ``writer_id`` (this process's
    live log) are left alone."""
    directory = Path(root) / WAL_DIR
    segments = (
        sorted(p for p in directory.glob("wal-*.log") if not p.name.startswith(f"wal-{writer_id}-"))
        if directory.exists()
        else []
    )
    if not segments:
        return 0
    present = known_batch_ids()
    items: list[tuple[BatchFrame, str]] = []
    for segment in segments:
        for header, body in Wal.records(segment):
            if header["batch_id"] in present:
                continue
            frame = decode_batch(body, str(header["content_type"]), header["content_encoding"])
            items.append((frame, str(header["digest"])))
            present.add(frame.batch_id)
    if items:
        writer = JournalWriter(Path(root), writer_id=f"{writer_id}-recovered")
        for frame, digest in items:
            writer.append(frame, digest)
        writer.flush()
    for segment in segments:
        segment.unlink()
    fsync_dir(directory)
    log.warning(
        "journal recovery: %d batches replayed from %d WAL segments", len(items), len(segments)
    )
    return len(items)


# --- compaction ------------------------------------------------------------------------------


def _compacted_from(path: Path) -> list[str]:
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(COMPACTED_KEY)
    return list(json.loads(raw)) if raw else []


def finish_interrupted_compactions(root: Path) -> int:
    """Delete part files a compacted file already holds (left by a crash); return how many."""
    removed = 0
    for table in JOURNAL_TABLES:
        for merged in (Path(root) / table).glob("*/*/compact-*.parquet"):
            for name in _compacted_from(merged):
                source = merged.parent / name
                if source.exists():
                    source.unlink()
                    removed += 1
    return removed


COMPACT_MAX_FILES = 32
"""Most part files one merge reads at once (each costs about one of its row groups of memory
while the merge runs); more small files are merged in several runs, and the results again
later while they are still small."""


def compact(root: Path, *, min_files: int, writer_id: str, skip_newer_than_s: float = 5.0,
            max_rows: int = 1_000_000, row_group_rows: int = ROW_GROUP_ROWS,
            max_files: int = COMPACT_MAX_FILES) -> int:
    """Merge a partition's small part files, ``min_files`` or more at a time; return files
    merged.

    A part file is small below ``max_rows // 4`` rows; small files are merged in runs of at
    most ``max_rows`` rows and ``max_files`` files (at least ``min_files``); a busy hour's
    flushes are already large and are left alone. The merge streams
    (:func:`sreagent.evidence.journal.merge_parts`): it holds about one row group per file
    it reads plus one output row group, never the run's rows at once. The merged file is
    sorted by host again. Files younger than ``skip_newer_than_s`` are left alone so
    compaction never races a flush renaming a file into place.
    """
    merged_count = 0
    now = time.time()
    small_below = max(1, max_rows // 4)
    for table, schema in JOURNAL_TABLES.items():
        for folder in sorted((Path(root) / table).glob("*/*")):
            candidates = []
            for p in sorted(folder.glob("*.parquet")):
                if p.name.startswith(".") or now - p.stat().st_mtime <= skip_newer_than_s:
                    continue
                rows = pq.read_metadata(p).num_rows
                if rows < small_below:
                    candidates.append((p, rows))
            rows_of = dict(candidates)
            for run in _runs_of_at_most(candidates, max_rows, max(min_files, max_files)):
                if len(run) < min_files:
                    continue
                started_wall, started = time.time(), time.perf_counter()
                metadata = {COMPACTED_KEY: json.dumps([p.name for p in run]).encode()}
                target = folder / f"compact-{writer_id}-{int(now * 1e3)}-{run[0].stem}.parquet"
                atomic_write(target, functools.partial(
                    _merge_into, sources=run, schema=schema, metadata=metadata,
                    row_group_rows=row_group_rows, layout=folder_layout(folder)))
                for p in run:
                    p.unlink()
                merged_count += len(run)
                _record_activity("compact", started_wall, time.perf_counter() - started,
                                 table=table, files=len(run), rows=sum(rows_of[p] for p in run))
    return merged_count


def _merge_into(tmp: Path, *, sources: list[Path], schema: pa.Schema,
                metadata: dict[bytes, bytes], row_group_rows: int, layout: int) -> None:
    merge_parts(sources, tmp, schema=schema, metadata=metadata,
                row_group_rows=row_group_rows, layout=layout)


def _runs_of_at_most(files: list[tuple[Path, int]], max_rows: int,
                     max_files: int) -> list[list[Path]]:
    runs: list[list[Path]] = []
    current: list[Path] = []
    total = 0
    for path, rows in files:
        if current and (total + rows > max_rows or len(current) >= max_files):
            runs.append(current)
            current, total = [], 0
        current.append(path)
        total += rows
    if current:
        runs.append(current)
    return runs
