"""The controller's journal: WAL records, recovery after a crash, compaction."""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
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
from sreagent.evidence.journal import LAYOUT_KEY, LAYOUT_VERSION
from sreagent.telemetry import batch_digest, decode_batch
from tests.controller.helpers import ARROW, T0, body, make_batch

FIXTURES = Path(__file__).parent / "fixtures"


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
    # one file per table and hour, however many hosts: (batches, samples); no events here
    assert sorted(p.relative_to(tmp_path).parts[:3] for p in first) == [
        ("batches", "date=2026-01-01", "hour=00"), ("samples", "date=2026-01-01", "hour=00")]
    writer.append(_pending(9).frame, "d9")
    assert {p.name for p in writer.flush()} == {"part-w-00000002.parquet"}
    assert not list(tmp_path.rglob(f"{TMP_PREFIX}*"))  # every part renamed into place
    batches = Journal(tmp_path).read("batches")
    assert sorted(batches.column("seq").to_pylist()) == [1, 2, 3, 4, 9]
    assert sorted(batches.column("digest").to_pylist()) == ["d1", "d2", "d3", "d4", "d9"]


def test_a_flush_sorts_by_host_and_readers_skip_other_hosts_row_groups(tmp_path: Path) -> None:
    hosts = [f"node-{i:02d}" for i in range(12)]
    writer = JournalWriter(tmp_path, writer_id="w", row_group_rows=20)
    frames = []
    for seq in range(1, 4):  # arrival interleaves hosts; the file must not
        for i, host in enumerate(reversed(hosts)):
            batch = make_batch(collector=f"c{i}", host=host, seq=seq, samples=5, value=seq)
            frames.append(decode_batch(body(batch), ARROW["Content-Type"]))
            writer.append(frames[-1])
    [batches_file, samples_file] = writer.flush()
    samples = pq.read_table(samples_file)
    assert samples.num_rows == 3 * 12 * 5
    order = list(zip(samples.column("host").to_pylist(), samples.column("batch_id").to_pylist(),
                     strict=True))
    expected = [(f.header.host, f.batch_id) for f in sorted(
        frames, key=lambda f: (f.header.host, f.header.sent_at_ns)) for _ in range(5)]
    assert order == expected  # identity columns line up with the rows they belong to
    assert samples.column("value").to_pylist()[:15] == [1.0] * 5 + [2.0] * 5 + [3.0] * 5
    metadata = pq.ParquetFile(samples_file).metadata
    assert metadata.metadata[LAYOUT_KEY] == str(LAYOUT_VERSION).encode()
    assert metadata.num_row_groups == 9  # 180 rows in groups of 20
    host_column = samples.schema.get_field_index("host")
    ranges = [(metadata.row_group(g).column(host_column).statistics.min,
               metadata.row_group(g).column(host_column).statistics.max)
              for g in range(metadata.num_row_groups)]
    # sorted by host, so the groups' host ranges only touch at their ends: a reader looking
    # for one host needs at most two of the nine groups
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in itertools.pairwise(ranges))
    assert sum(lo <= "node-05" <= hi for lo, hi in ranges) <= 2
    journal = Journal(tmp_path)
    wanted = journal.read("samples", hosts=["node-05", "node-07"])
    assert sorted(set(wanted.column("host").to_pylist())) == ["node-05", "node-07"]
    assert wanted.num_rows == 2 * 3 * 5
    assert journal.read("samples", hosts=[]).num_rows == 0
    second = journal.read("samples", hosts=["node-05"], time_range=(T0 + 2 * 10**9 - 4,
                                                                    T0 + 2 * 10**9))
    assert second.column("value").to_pylist() == [2.0] * 5  # seq 2's rows only
    assert journal.read("batches", time_range=(T0 + 3 * 10**9, T0 + 9 * 10**9)).num_rows == 12
    assert journal.hosts() == hosts
    assert pq.read_table(batches_file).column("host").to_pylist() == sorted(
        [h for h in hosts for _ in range(3)])


def test_a_layout_1_journal_is_still_read_extended_and_compacted(tmp_path: Path) -> None:
    root = tmp_path / "journal"
    shutil.copytree(FIXTURES / "journal_v1", root)
    v1_files = sorted(p.relative_to(root) for p in root.rglob("*.parquet"))
    assert any("host=edge%2Fhost%202" in str(p) for p in v1_files)
    journal = Journal(root)
    assert journal.hosts() == ["edge/host 2", "node-1"]
    assert journal.read("samples").num_rows == 2 * 3 * 4
    assert journal.read("samples", hosts=["edge/host 2"]).num_rows == 3 * 4
    assert journal.read("events", hosts=["node-1"]).num_rows == 1
    assert journal.read("batches", batch_ids=["c-node-1/e1/3"]).column("seq").to_pylist() == [3]
    assert journal.scan("samples").collect().height == 24
    # a layout-2 writer adds to the same tree; readers see both
    _write(root, [(p.frame, p.digest) for p in (_pending(7), _pending(8, host="node-9"))],
           writer_id="v2", sequence=1)
    assert (root / "samples" / "date=2026-01-01" / "hour=00" / "part-v2-00000001.parquet").exists()
    assert journal.hosts() == ["edge/host 2", "node-1", "node-9"]
    node_1 = journal.read("samples", hosts=["node-1"])
    assert node_1.num_rows == 3 * 4 + 5  # layout-1 rows and the new batch
    assert set(node_1.column("batch_id").to_pylist()) == {
        "c-node-1/e1/1", "c-node-1/e1/2", "c-node-1/e1/3", "c1/e1/7"}
    # compaction merges the layout-1 folders in place and loses nothing
    old = time.time() - 60
    for f in root.rglob("*.parquet"):
        os.utime(f, (old, old))
    before = journal.read("samples").sort_by([("host", "ascending"), ("batch_id", "ascending"),
                                               ("ts_ns", "ascending")])
    assert compact(root, min_files=2, writer_id="c") == 4 * 2  # batches and samples, 2 hosts
    merged = sorted((root / "samples").rglob("compact-*.parquet"))
    assert [p.parent.name for p in merged] == ["host=edge%2Fhost%202", "host=node-1"]
    assert pq.read_schema(merged[0]).metadata[LAYOUT_KEY] == b"1"
    after = journal.read("samples").sort_by([("host", "ascending"), ("batch_id", "ascending"),
                                              ("ts_ns", "ascending")])
    assert after.equals(before)


def test_compaction_leaves_large_files_and_merges_at_most_max_rows(tmp_path: Path) -> None:
    for seq in range(1, 8):
        p = _pending(seq, host=f"node-{seq % 3}")
        _write(tmp_path, [(p.frame, p.digest)], writer_id="w", sequence=seq)
    big = _pending(50)
    big_frame = decode_batch(body(make_batch(seq=50, samples=400)), ARROW["Content-Type"])
    _write(tmp_path, [(big_frame, big.digest)], writer_id="w", sequence=50)
    old = time.time() - 60
    for f in tmp_path.rglob("*.parquet"):
        os.utime(f, (old, old))
    before = Journal(tmp_path).read("samples").num_rows
    # samples: seven 5-row files are small (< 1000 // 4), the 400-row one is not; runs of at
    # most 1000 rows; batches: eight 1-row files, all small
    assert compact(tmp_path, min_files=3, writer_id="c", max_rows=1000) == 7 + 8
    samples_dir = tmp_path / "samples" / "date=2026-01-01" / "hour=00"
    assert sorted(p.name for p in samples_dir.iterdir())[1:] == ["part-w-00000050.parquet"]
    [merged] = samples_dir.glob("compact-*.parquet")
    merged_hosts = pq.read_table(merged).column("host").to_pylist()
    assert merged_hosts == sorted(merged_hosts) and len(merged_hosts) == 35
    assert Journal(tmp_path).read("samples").num_rows == before
    # with a tight bound the small files are merged in several runs
    for seq in range(60, 66):
        p = _pending(seq)
        _write(tmp_path, [(p.frame, p.digest)], writer_id="w", sequence=seq)
    for f in tmp_path.rglob("part-*.parquet"):
        os.utime(f, (old, old))
    assert compact(tmp_path, min_files=2, writer_id="d", max_rows=10_000) > 0
