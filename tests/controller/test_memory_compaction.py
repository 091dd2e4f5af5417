"""Compaction's memory bound from the controller's side: a merge opens at most ``max_files``
part files, more small files are merged in several runs, nothing is lost, and each merge is
recorded in the journal activity a memory profile reads."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sreagent.controller.journal import (
    COMPACTED_KEY,
    GroupCommitJournal,
    compact,
    journal_activity,
)
from sreagent.controller.service import Controller
from sreagent.evidence import Journal, JournalWriter
from sreagent.telemetry import batch_digest, decode_batch
from tests.controller.helpers import ARROW, body, make_batch, make_settings, wait_for


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


def _journal(root: Path) -> GroupCommitJournal:
    return GroupCommitJournal(root, writer_id="w", on_durable=lambda group: None,
                              flush_interval_s=3600)


def test_jobs_run_on_the_flushing_thread_and_are_cancelled_at_close(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    try:
        assert journal.run_in_flush_thread(
            lambda: threading.current_thread().name).result(timeout=30) == "journal-parquet"

        def fails() -> None:
            raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            journal.run_in_flush_thread(fails).result(timeout=30)
    finally:
        journal.close()
    late = journal.run_in_flush_thread(lambda: "never")
    assert late.cancelled()


def test_the_controller_compacts_on_the_flushing_thread(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, journal={"compact_interval_s": 0.2,
                                                "compact_min_files": 2})
    root = settings.journal_root
    _small_parts(root, 3)
    started = time.time()
    controller = Controller(settings)
    controller.start()
    try:
        wait_for(lambda: list((root / "samples").rglob("compact-*.parquet")), timeout=60,
                 what="a compaction")
    finally:
        controller.stop()
    compactions = [a for a in journal_activity()
                   if a["kind"] == "compact" and a["wall"] >= started]
    assert {a["thread"] for a in compactions} == {"journal-parquet"}
    assert Journal(root).read("samples").num_rows == 3 * 4
