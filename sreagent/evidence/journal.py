"""The fleet-wide evidence journal: every accepted batch, Hive-partitioned Parquet.

Layout: ``<root>/<table>/date=YYYY-MM-DD/host=<host>/part-<writer>-<n>.parquet`` for the
tables ``batches``, ``samples``, ``processes`` and ``events`` (schemas in
:mod:`sreagent.evidence.tables`). The date is the UTC day of the batch's ``sent_at_ns``, so a
batch is never split across partitions. Host names are percent-encoded in the path. polars,
DuckDB, Spark and Trino read the tree as it is (``hive_partitioning``).

The writer buffers rows in memory and writes one part file per (table, date, host) on
:meth:`JournalWriter.flush`; each part file is written under a temporary name and renamed into
place (readers never see a partial file), then the whole flush is made durable at once. The
controller writes its journal through this writer too (behind its write-ahead log).
"""

from __future__ import annotations

import ctypes
import os
import secrets
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sreagent.atomic import PARQUET_OPTIONS, TMP_PREFIX
from sreagent.evidence.tables import BATCHES_SCHEMA, ROW_TABLES, batch_rows, with_identity
from sreagent.telemetry.arrow import BatchFrame

JOURNAL_TABLES: dict[str, pa.Schema] = {"batches": BATCHES_SCHEMA, **ROW_TABLES}


def partition_dir(root: Path, table: str, sent_at_ns: int, host: str) -> Path:
    """The partition folder a batch's rows of ``table`` go to."""
    day = datetime.fromtimestamp(sent_at_ns / 1e9, tz=UTC).strftime("%Y-%m-%d")
    return root / table / f"date={day}" / f"host={quote(host, safe='')}"


class JournalWriter:
    """Buffers accepted batches and writes them as Parquet part files on :meth:`flush`.

    Not thread-safe: one owner appends and flushes (the controller swaps in a fresh writer
    under its lock and flushes the old one outside it).
    """

    def __init__(self, root: Path | str, *, writer_id: str | None = None, sequence: int = 0,
                 threads: int = 1):
        self.root = Path(root)
        self.writer_id = writer_id or secrets.token_hex(4)
        self.sequence = sequence
        """Flushes written so far; flush ``n`` names its files ``part-<writer_id>-<n>``."""
        self.threads = threads
        """Partitions written in parallel by :meth:`flush`. 1 by default: the small per-file
        encodes contend for the GIL and measured slower in parallel (docs/benchmarks.md)."""
        self._pending: dict[tuple[str, Path], list[pa.Table]] = defaultdict(list)
        self.pending_batches = 0
        self.pending_rows = 0

    def append(self, frame: BatchFrame, digest: str | None = None) -> None:
        """Buffer one batch (not durable until :meth:`flush` returns)."""
        header = frame.header
        for table in JOURNAL_TABLES:
            folder = partition_dir(self.root, table, header.sent_at_ns, header.host)
            if table == "batches":
                rows = pa.Table.from_pylist([batch_rows(frame, digest)], schema=BATCHES_SCHEMA)
            else:
                rows = with_identity(frame, table)
                if rows.num_rows == 0:
                    continue
            self._pending[(table, folder)].append(rows)
        self.pending_batches += 1
        self.pending_rows += frame.row_count

    def flush(self) -> list[Path]:
        """Write everything buffered, one file per (table, date, host), and make it durable;
        return the part files written.

        Durability is ONE ``syncfs(2)`` of the journal's file system after all renames instead
        of two fsyncs per file: a flush touches one file per host and table, so per-file
        fsyncs would dominate. A crash before it returns may lose the flush; the controller's
        write-ahead log still holds those batches then.
        """
        if not self._pending:
            return []
        self.sequence += 1
        jobs = [
            (folder / f"part-{self.writer_id}-{self.sequence:08d}.parquet",
             pa.concat_tables(parts))
            for (_table, folder), parts in sorted(self._pending.items(), key=lambda kv: str(kv[0]))
        ]
        if self.threads <= 1 or len(jobs) <= 1:
            for job in jobs:
                _write_part(job)
        else:
            with ThreadPoolExecutor(min(self.threads, len(jobs))) as pool:
                list(pool.map(_write_part, jobs))
        syncfs(self.root)
        self._pending.clear()
        self.pending_batches = 0
        self.pending_rows = 0
        return [path for path, _ in jobs]


def _write_part(job: tuple[Path, pa.Table]) -> None:
    path, table = job
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    pq.write_table(table, tmp, **PARQUET_OPTIONS)
    os.replace(tmp, path)


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


class Journal:
    """Read access to a journal tree."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def files(self, table: str) -> list[Path]:
        base = self.root / table
        if not base.exists():
            return []
        return sorted(p for p in base.rglob("*.parquet") if not p.name.startswith(TMP_PREFIX))

    def scan(self, table: str) -> pl.LazyFrame:
        """A lazy polars frame over one table, with ``date`` and ``host`` partition columns
        dropped in favour of the ``host`` column every row already carries."""
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
    ) -> pa.Table:
        """Read one table as Arrow, optionally only some hosts or batches."""
        files = self.files(table)
        if hosts is not None:
            wanted = {f"host={quote(h, safe='')}" for h in hosts}
            files = [f for f in files if f.parent.name in wanted]
        if not files:
            return JOURNAL_TABLES[table].empty_table()
        import pyarrow.dataset as ds

        dataset = ds.dataset(files, schema=JOURNAL_TABLES[table], format="parquet")
        expression = ds.field("batch_id").isin(batch_ids) if batch_ids is not None else None
        return dataset.to_table(filter=expression)

    def hosts(self) -> list[str]:
        base = self.root / "batches"
        if not base.exists():
            return []
        return sorted({unquote(p.name.removeprefix("host=")) for p in base.glob("date=*/host=*")})
