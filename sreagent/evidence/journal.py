"""The fleet-wide evidence journal: every accepted batch, Hive-partitioned Parquet.

Layout (version 2): ``<root>/<table>/date=YYYY-MM-DD/hour=HH/part-<writer>-<n>.parquet`` for
the tables ``batches``, ``samples``, ``processes`` and ``events`` (schemas in
:mod:`sreagent.evidence.tables`). Date and hour are the UTC time of the batch's
``sent_at_ns``, so a batch is never split across partitions. Inside a part file rows are
sorted by ``host`` (then by the batch's ``sent_at_ns``) and cut into row groups of at most ``row_group_rows`` rows, so the
``host`` column's row-group statistics let a reader skip the other hosts' rows
(:meth:`Journal.read` filters through ``pyarrow.dataset`` with predicate pushdown). polars,
DuckDB, Spark and Trino read the tree as it is (``hive_partitioning``).

Why not a folder per host (layout version 1, ``date=YYYY-MM-DD/host=<host>/``): a flush then
writes one small file per host and table, about 400 at 200 hosts, and the per-file cost made
journal writing 20-30x slower than writing the same rows as one file. Version-1 trees are
still read (every row carries ``host`` either way) and compacted in place; nothing rewrites
them.

The writer buffers rows in memory and writes one part file per (table, date, hour) on
:meth:`JournalWriter.flush`; each part file is written under a temporary name and renamed into
place (readers never see a partial file), then the whole flush is made durable at once. The
controller writes its journal through this writer too (behind its write-ahead log).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import secrets
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sreagent.atomic import PARQUET_OPTIONS, TMP_PREFIX
from sreagent.evidence.tables import BATCHES_SCHEMA, ROW_TABLES, batch_rows
from sreagent.telemetry.arrow import BatchFrame

JOURNAL_TABLES: dict[str, pa.Schema] = {"batches": BATCHES_SCHEMA, **ROW_TABLES}
LAYOUT_VERSION = 2
"""Written into every part file's Parquet metadata under :data:`LAYOUT_KEY`."""
LAYOUT_KEY = b"sreagent.journal_layout"
TIME_COLUMN = {"batches": "sent_at_ns", "samples": "ts_ns", "processes": "ts_ns",
               "events": "ts_ns"}
ROW_GROUP_ROWS = 65_536
"""Default row-group size: small enough that one host's rows span few groups, large enough
that the per-group overhead does not show."""


_HOUR_NS = 3600 * 10**9


def partition_dir(root: Path, table: str, sent_at_ns: int) -> Path:
    """The partition folder a batch's rows of ``table`` go to (UTC date and hour)."""
    return _hour_dir(root, table, sent_at_ns // _HOUR_NS)


def _hour_dir(root: Path, table: str, hour: int) -> Path:
    at = datetime.fromtimestamp(hour * 3600, tz=UTC)
    return root / table / f"date={at:%Y-%m-%d}" / f"hour={at:%H}"


def sort_by_host(table: pa.Table) -> pa.Table:
    """``table`` with its rows stably sorted by ``host`` (compaction merges files that each
    are sorted, the result must be too)."""
    if table.num_rows <= 1:
        return table
    hosts = table.column("host").combine_chunks().dictionary_encode()
    names = np.asarray(hosts.dictionary.to_pylist(), dtype=object)
    rank_of_code = np.empty(len(names), np.int64)
    rank_of_code[np.argsort(names, kind="stable")] = np.arange(len(names))
    rank = rank_of_code[hosts.indices.to_numpy(zero_copy_only=False)]
    if bool(np.all(np.diff(rank) >= 0)):
        return table
    return table.take(pa.array(np.argsort(rank, kind="stable")))


def _with_identity(frames: list[BatchFrame], name: str, row_group_rows: int
                   ) -> Iterator[pa.Table]:
    """The rows of many frames' table ``name`` with ``batch_id`` and ``host`` in front, one
    row group (``row_group_rows`` rows) at a time. The identity columns are built per row
    group (a dictionary expanded in C), not per batch and not for the whole flush at once:
    a flush's extra memory is then about one row group, however many rows it writes."""
    parts = [getattr(f, name) for f in frames]
    counts = np.fromiter((p.num_rows for p in parts), np.int64, len(parts))
    rows = pa.concat_tables(parts)  # zero-copy: the frames' own buffers, chunked
    positions = np.repeat(np.arange(len(frames), dtype=np.int32), counts)
    batch_ids = pa.array([f.batch_id for f in frames], pa.string())
    hosts = pa.array([f.header.host for f in frames], pa.string())
    schema = ROW_TABLES[name]
    for start in range(0, max(rows.num_rows, 1), row_group_rows):
        at = pa.array(positions[start:start + row_group_rows])
        group = rows.slice(start, row_group_rows)
        yield pa.Table.from_arrays(
            [pa.DictionaryArray.from_arrays(at, batch_ids).cast(pa.string()),
             pa.DictionaryArray.from_arrays(at, hosts).cast(pa.string()), *group.columns],
            schema=schema)


def write_parquet(path: Path, table: pa.Table, *, row_group_rows: int = ROW_GROUP_ROWS,
                  metadata: dict[bytes, bytes] | None = None,
                  layout: int = LAYOUT_VERSION) -> None:
    """Write ``table`` (already sorted by host) to ``path`` as one Parquet file with the
    journal's options, row-group size and layout marker. No rename, no fsync."""
    table = table.replace_schema_metadata({**(metadata or {}), LAYOUT_KEY: str(layout).encode()})
    pq.write_table(table, path, row_group_size=row_group_rows, **PARQUET_OPTIONS)


MERGE_BATCH_ROWS = 4096
"""Rows :func:`merge_parts` decodes from one source at a time."""


def merge_parts(sources: list[Path], target: Path, *, schema: pa.Schema,
                row_group_rows: int = ROW_GROUP_ROWS, metadata: dict[bytes, bytes] | None = None,
                layout: int = LAYOUT_VERSION, batch_rows: int = MERGE_BATCH_ROWS) -> int:
    """Write the rows of ``sources`` (part files, each sorted by host) to ``target`` as one
    file sorted by host, and return its row count. No rename, no fsync.

    The rows come out exactly as a stable sort by host of all sources concatenated in the
    given order would give them (host by host, each source's rows of that host in turn), but
    as a streaming k-way merge: each source is decoded ``batch_rows`` rows at a time and the
    output is written one row group (``row_group_rows``) at a time. Memory is therefore about
    one output row group plus ``batch_rows`` decoded rows and the compressed column chunks
    per source, not the sum of the sources (compaction once held every source and a sorted
    copy of them). The caller bounds how many sources one merge opens.
    """
    schema = schema.with_metadata({**(metadata or {}), LAYOUT_KEY: str(layout).encode()})
    cursors = [_HostRuns(path, schema, batch_rows) for path in sources]
    total = 0
    with pq.ParquetWriter(target, schema, **PARQUET_OPTIONS) as writer:
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        while live := [c for c in cursors if c.host is not None]:
            host = min(c.host for c in live if c.host is not None)
            for cursor in live:
                for piece in cursor.take(host):
                    pending.append(piece)
                    pending_rows += piece.num_rows
                    if pending_rows >= row_group_rows:  # a large host need not be held whole
                        writer.write_table(pa.Table.from_batches(pending, schema),
                                           row_group_size=row_group_rows)
                        total += pending_rows
                        pending, pending_rows = [], 0
        if pending_rows or total == 0:
            writer.write_table(pa.Table.from_batches(pending, schema),
                               row_group_size=row_group_rows)
            total += pending_rows
    return total


class _HostRuns:
    """A part file read ``batch_rows`` rows at a time, as runs of one host each."""

    def __init__(self, path: Path, schema: pa.Schema, batch_rows: int):
        self._schema = schema
        self._batches: Iterator[pa.RecordBatch]
        source = pq.ParquetFile(path, pre_buffer=False)
        if source.metadata.num_rows <= batch_rows:
            # Small enough to decode at once: read and close it, so a merge of many small
            # files does not keep a reader (and a decompressor per column) open for each.
            with source:
                self._batches = iter(source.read(use_threads=False).combine_chunks()
                                     .to_batches())
        else:
            self._batches = source.iter_batches(batch_size=batch_rows, use_threads=False)
        self._batch: pa.RecordBatch | None = None
        self._runs: list[tuple[str, int, int]] = []  # (host, start, end), reversed
        self._next_batch()

    @property
    def host(self) -> str | None:
        """The host of the next row; None at the end of the file."""
        return self._runs[-1][0] if self._runs else None

    def take(self, host: str) -> Iterator[pa.RecordBatch]:
        """This file's next rows while they are of ``host``, advancing past them (one
        decoded batch at a time)."""
        while self._runs and self._runs[-1][0] == host:
            _, start, end = self._runs.pop()
            assert self._batch is not None
            yield self._batch.slice(start, end - start)
            if not self._runs:
                self._next_batch()

    def _next_batch(self) -> None:
        import pyarrow.compute as pc

        self._batch = None
        for batch in self._batches:
            if batch.num_rows:
                self._batch = _conform(batch, self._schema)
                runs = pc.run_end_encode(self._batch.column("host"))
                ends = runs.run_ends.to_pylist()
                starts = [0, *ends[:-1]]
                self._runs = list(zip(runs.values.to_pylist(), starts, ends,
                                      strict=True))[::-1]
                return
        self._batches = iter(())  # the end: let go of the reader now


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A source batch in the journal schema's column order and types."""
    if batch.schema.equals(schema, check_metadata=False):
        return batch
    return batch.select(schema.names).cast(schema.remove_metadata())


def write_part(path: Path, table: pa.Table | Iterable[pa.Table], *,
               row_group_rows: int = ROW_GROUP_ROWS) -> None:
    """Write a flush's part file under a temporary name, then rename it into place. Not
    fsynced: the caller makes a whole flush durable at once. ``table`` may also be the row
    groups one at a time (tables of at most ``row_group_rows`` rows, sorted by host across
    them), so a caller need not build the whole file's rows at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    if isinstance(table, pa.Table):
        write_parquet(tmp, table, row_group_rows=row_group_rows)
    else:
        groups = iter(table)
        first = next(groups)
        schema = first.schema.with_metadata({LAYOUT_KEY: str(LAYOUT_VERSION).encode()})
        with pq.ParquetWriter(tmp, schema, **PARQUET_OPTIONS) as writer:
            for group in itertools.chain([first], groups):
                writer.write_table(group, row_group_size=row_group_rows)
    os.replace(tmp, path)


def folder_layout(folder: Path) -> int:
    """The layout version of a partition folder: 1 for ``host=...``, 2 for ``hour=..``."""
    return 1 if folder.name.startswith("host=") else LAYOUT_VERSION


class JournalWriter:
    """Buffers accepted batches and writes them as Parquet part files on :meth:`flush`.

    Not thread-safe: one owner appends and flushes (the controller swaps in a fresh writer
    under its lock and flushes the old one outside it).
    """

    def __init__(self, root: Path | str, *, writer_id: str | None = None, sequence: int = 0,
                 threads: int = 1, row_group_rows: int = ROW_GROUP_ROWS):
        self.root = Path(root)
        self.writer_id = writer_id or secrets.token_hex(4)
        self.sequence = sequence
        """Flushes written so far; flush ``n`` names its files ``part-<writer_id>-<n>``."""
        self.threads = threads
        """Part files written in parallel by :meth:`flush`. 1 by default: a flush writes one
        file per table and hour, which leaves little to overlap."""
        self.row_group_rows = row_group_rows
        self._by_hour: dict[int, list[tuple[BatchFrame, str | None]]] = defaultdict(list)
        self.pending_batches = 0
        self.pending_rows = 0

    def append(self, frame: BatchFrame, digest: str | None = None) -> None:
        """Buffer one batch (not durable until :meth:`flush` returns). The frame is kept as
        it is; its rows are copied once, at flush."""
        self._by_hour[frame.header.sent_at_ns // _HOUR_NS].append((frame, digest))
        self.pending_batches += 1
        self.pending_rows += frame.row_count

    def flush(self) -> list[Path]:
        """Write everything buffered, one file per (table, date, hour), and make it durable;
        return the part files written.

        Rows are ordered by host, then by their batch's ``sent_at_ns`` (then arrival); inside
        a batch they keep the collector's order. Ordering whole batches costs no row copies,
        and host order is what lets readers skip row groups.

        Durability is ONE ``syncfs(2)`` of the journal's file system after all renames instead
        of two fsyncs per file. A crash before it returns may lose the flush; the controller's
        write-ahead log still holds those batches then.
        """
        if not self._by_hour:
            return []
        self.sequence += 1
        name = f"part-{self.writer_id}-{self.sequence:08d}.parquet"
        jobs: list[tuple[Path, list[tuple[BatchFrame, str | None]], str]] = []
        for hour, items in sorted(self._by_hour.items()):
            items = sorted(items, key=lambda it: (it[0].header.host, it[0].header.sent_at_ns))
            for table in JOURNAL_TABLES:
                jobs.append((_hour_dir(self.root, table, hour) / name, items, table))

        def write(job: tuple[Path, list[tuple[BatchFrame, str | None]], str]) -> Path | None:
            path, items, table = job
            rows: pa.Table | Iterator[pa.Table]
            if table == "batches":
                rows = pa.Table.from_pylist([batch_rows(f, d) for f, d in items],
                                            schema=BATCHES_SCHEMA)
            else:
                frames = [f for f, _ in items if getattr(f, table).num_rows]
                if not frames:
                    return None
                rows = _with_identity(frames, table, self.row_group_rows)
            write_part(path, rows, row_group_rows=self.row_group_rows)
            return path

        if self.threads <= 1 or len(jobs) <= 1:
            results = [write(job) for job in jobs]
        else:
            with ThreadPoolExecutor(min(self.threads, len(jobs))) as pool:
                results = list(pool.map(write, jobs))
        syncfs(self.root)
        self._by_hour.clear()
        self.pending_batches = 0
        self.pending_rows = 0
        return [p for p in results if p is not None]


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs.argtypes = [ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()


def syncfs(path: Path) -> None:
    """Flush every dirty page and directory entry of the file system holding ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _LIBC is None or _LIBC.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _v1_host(path: Path) -> str | None:
    """The host a layout-1 part file's folder names, or None for a layout-2 file."""
    folder = path.parent.name
    return unquote(folder.removeprefix("host=")) if folder.startswith("host=") else None


class Journal:
    """Read access to a journal tree (layout 2, and layout-1 trees written before it)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def files(self, table: str) -> list[Path]:
        base = self.root / table
        if not base.exists():
            return []
        return sorted(p for p in base.rglob("*.parquet") if not p.name.startswith(TMP_PREFIX))

    def scan(self, table: str) -> pl.LazyFrame:
        """A lazy polars frame over one table, with the partition columns (``date``,
        ``hour``; ``host`` in layout 1) dropped in favour of the ``host`` column every row
        already carries."""
        if table not in JOURNAL_TABLES:
            raise ValueError(f"no journal table {table!r}; tables are {sorted(JOURNAL_TABLES)}")
        files = self.files(table)
        if not files:
            return pl.from_arrow(JOURNAL_TABLES[table].empty_table()).lazy()  # type: ignore[union-attr]
        return pl.scan_parquet(files, hive_partitioning=False)

    def read(
        self,
        table: str,
        *,
        hosts: list[str] | None = None,
        batch_ids: list[str] | None = None,
        columns: list[str] | None = None,
        time_range: tuple[int, int] | None = None,
    ) -> pa.Table:
        """Read one table as Arrow, optionally only some hosts, batches, columns, or rows whose
        time (``sent_at_ns`` for ``batches``, ``ts_ns`` otherwise) lies in the closed
        ``time_range``.

        Filters are pushed down: layout-1 folders of other hosts are not opened, and row
        groups whose ``host`` or time statistics exclude the wanted rows are not read."""
        if table not in JOURNAL_TABLES:
            raise ValueError(f"no journal table {table!r}; tables are {sorted(JOURNAL_TABLES)}")
        schema = JOURNAL_TABLES[table]
        files = self.files(table)
        if hosts is not None:
            wanted = set(hosts)
            files = [f for f in files if (host := _v1_host(f)) is None or host in wanted]
        if not files:
            empty = schema.empty_table()
            return empty.select(columns) if columns is not None else empty
        import pyarrow.dataset as ds

        expression = None
        if hosts is not None:
            expression = ds.field("host").isin(pa.array(sorted(set(hosts)), pa.string()))
        if batch_ids is not None:
            by_id = ds.field("batch_id").isin(pa.array(batch_ids, pa.string()))
            expression = by_id if expression is None else expression & by_id
        if time_range is not None:
            when = ds.field(TIME_COLUMN[table])
            in_range = (when >= time_range[0]) & (when <= time_range[1])
            expression = in_range if expression is None else expression & in_range
        dataset = ds.dataset([str(f) for f in files], schema=schema, format="parquet")
        return dataset.to_table(columns=columns, filter=expression)

    def hosts(self) -> list[str]:
        """Every host the journal holds a batch of, sorted."""
        rows = self.read("batches", columns=["host"])
        return sorted(set(rows.column("host").unique().to_pylist()))


__all__ = ["JOURNAL_TABLES", "LAYOUT_KEY", "LAYOUT_VERSION", "Journal", "JournalWriter",
           "folder_layout", "merge_parts", "partition_dir", "sort_by_host", "syncfs", "write_parquet",
           "write_part"]
