"""Compaction's memory bound from the controller's side: a merge opens at most ``max_files``
part files, more small files are merged in several runs, nothing is lost, and each merge is
recorded in the journal activity a memory profile reads."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow.parquet as pq

from sreagent.controller.journal import COMPACTED_KEY, compact, journal_activity
from sreagent.evidence import Journal, JournalWriter
from sreagent.telemetry import batch_digest, decode_batch
from tests.controller.helpers import ARROW, body, make_batch


def _small_parts(root: Path, count: int) -> None:
    for seq in range(1, count + 1):
        frame = decode_batch(body(make_batch(seq=seq, host=f"node-{seq % 3}", samples=4)),
                             ARROW["Content-Type"])
        writer = JournalWriter(root, writer_id="w", sequence=seq - 1)
        writer.append(frame, batch_digest(frame))
        writer.flush()
    old = time.time() - 60
    for path in root.rglob("part-*.parquet"):
        os.utime(path, (old, old))


def test_a_merge_reads_at_most_max_files_and_loses_nothing(tmp_path: Path) -> None:
    _small_parts(tmp_path, 11)
    journal = Journal(tmp_path)
    key = [("host", "ascending"), ("batch_id", "ascending"), ("ts_ns", "ascending")]
    before = journal.read("samples").sort_by(key)
    started = time.time()
    assert compact(tmp_path, min_files=2, max_files=4, writer_id="c") == 2 * 11
    merged = sorted((tmp_path / "samples").rglob("compact-*.parquet"))
    # 11 files, at most 4 per merge: runs of 4, 4, 3
    sources = [len(json.loads(pq.read_schema(p).metadata[COMPACTED_KEY])) for p in merged]
    assert sorted(sources) == [3, 4, 4]
    assert journal.read("samples").sort_by(key).equals(before)
    for path in merged:  # each merged file is sorted by host again
        hosts = pq.read_table(path, columns=["host"]).column("host").to_pylist()
        assert hosts == sorted(hosts)
    recorded = [a for a in journal_activity() if a["kind"] == "compact" and a["wall"] >= started]
    assert sorted((a["table"], a["files"]) for a in recorded) == sorted(
        [("batches", n) for n in (4, 4, 3)] + [("samples", n) for n in (4, 4, 3)])
    assert sum(a["rows"] for a in recorded if a["table"] == "samples") == before.num_rows


def test_min_files_above_max_files_still_merges(tmp_path: Path) -> None:
    _small_parts(tmp_path, 5)
    assert compact(tmp_path, min_files=5, max_files=2, writer_id="c") == 2 * 5
    assert len(list((tmp_path / "samples").rglob("*.parquet"))) == 1
