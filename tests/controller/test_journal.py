"""The controller's journal: WAL records, recovery after a crash, compaction."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from sreagent.atomic import TMP_PREFIX
from sreagent.controller.journal import (
    WAL_DIR,
    PendingBatch,
    Wal,
    compact,
    finish_interrupted_compactions,
    recover_wal,
)
from sreagent.evidence import Journal, JournalWriter
from sreagent.telemetry import batch_digest, decode_batch
from tests.controller.helpers import ARROW, body, make_batch


def _pending(seq: int, host: str = "node-1") -> PendingBatch:
    data = body(make_batch(seq=seq, host=host, samples=5))
    frame = decode_batch(data, ARROW["Content-Type"])
    return PendingBatch(frame, batch_digest(frame), data, ARROW["Content-Type"], None)


def test_wal_round_trip_and_torn_tail_is_ignored(tmp_path: Path) -> None:
    wal = Wal(tmp_path / WAL_DIR, "w1")
    wal.append([_pending(1), _pending(2)])
    wal.append([_pending(3)])
    [segment] = wal.rotate()
    with open(segment, "ab") as f:  # a crash in the middle of the next record
        f.write(b"SRW1\x00\x00\x00\x10\x00\x00")
    records = list(Wal.records(segment))
    assert [h["batch_id"] for h, _ in records] == ["c1/e1/1", "c1/e1/2", "c1/e1/3"]
    # a flipped byte in a body stops reading at that record (CRC mismatch)
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert len(list(Wal.records(segment))) < 3


def test_recovery_replays_only_what_parquet_lacks(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    first = [_pending(1), _pending(2)]
    _write(tmp_path, [(p.frame, p.digest) for p in first], writer_id="old", sequence=1)
    wal = Wal(tmp_path / WAL_DIR, "old")
    wal.append([*first, _pending(3, host="node-2")])  # 1 and 2 were flushed, 3 was not
    wal.close()
    live = Wal(tmp_path / WAL_DIR, "me")
    live.append([_pending(9)])  # this process's live log is not touched
    recovered = recover_wal(tmp_path, lambda: set(
        journal.read("batches").column("batch_id").to_pylist()), writer_id="me")
    assert recovered == 1
    ids = Counter(journal.read("batches").column("batch_id").to_pylist())
    assert ids == Counter({"c1/e1/1": 1, "c1/e1/2": 1, "c1/e1/3": 1})
    assert journal.read("samples", hosts=["node-2"]).num_rows == 5
    assert [p.name for p in (tmp_path / WAL_DIR).iterdir()] == ["wal-me-00000001.log"]


def test_compaction_merges_and_an_interrupted_one_is_finished(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    for seq in range(1, 6):
        p = _pending(seq)
        _write(tmp_path, [(p.frame, p.digest)], writer_id="w", sequence=seq)
    old = time.time() - 60
    for f in tmp_path.rglob("part-*.parquet"):
        os.utime(f, (old, old))
    before = journal.read("samples").sort_by("ts_ns")
    sources = sorted(p.name for p in (tmp_path / "samples").rglob("part-*.parquet"))
    assert compact(tmp_path, min_files=3, writer_id="w") == 10  # batches + samples tables
    assert not list(tmp_path.rglob("part-*.parquet"))
    assert journal.read("samples").sort_by("ts_ns").equals(before)
    # Simulate a crash after the merged file was written but before the sources went away:
    merged = next((tmp_path / "samples").rglob("compact-*.parquet"))
    for name in sources:
        (merged.parent / name).write_bytes(b"left over")
    assert finish_interrupted_compactions(tmp_path) == len(sources)
    assert journal.read("samples").num_rows == before.num_rows


def _write(root: Path, items: list, *, writer_id: str, sequence: int) -> list[Path]:
    writer = JournalWriter(root, writer_id=writer_id, sequence=sequence - 1)
    for frame, digest in items:
        writer.append(frame, digest)
    return writer.flush()


@pytest.mark.parametrize("threads", [1, 4])
def test_the_evidence_writer_names_parts_by_flush_and_writes_them_in_parallel(
        tmp_path: Path, threads: int) -> None:
    writer = JournalWriter(tmp_path, writer_id="w", threads=threads)
    for seq in range(1, 5):
        writer.append(_pending(seq, host=f"node-{seq % 2}").frame, f"d{seq}")
    first = writer.flush()
    assert {p.name for p in first} == {"part-w-00000001.parquet"}
    assert len(first) == 2 * 2  # two hosts x (batches, samples); no events in these
    writer.append(_pending(9).frame, "d9")
    assert {p.name for p in writer.flush()} == {"part-w-00000002.parquet"}
    assert not list(tmp_path.rglob(f"{TMP_PREFIX}*"))  # every part renamed into place
    batches = Journal(tmp_path).read("batches")
    assert sorted(batches.column("seq").to_pylist()) == [1, 2, 3, 4, 9]
    assert sorted(batches.column("digest").to_pylist()) == ["d1", "d2", "d3", "d4", "d9"]
