"""The spool: framing, crash safety with real killed processes, damage, bounds, counters."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sreagent.collector.spool import (
    CURSOR_FILE,
    HEAD_FILE,
    HEADER_BYTES,
    Spool,
    frame,
    scan_segment,
)

WRITER = Path(__file__).with_name("spool_writer.py")


def payload(seq: int, size: int = 64) -> bytes:
    body = f"seq={seq};".encode().ljust(size, b"x")
    return body + hashlib.sha256(body).digest()


def seq_of(data: bytes) -> int:
    """The seq of a self-checking payload; fails the test on anything that is not one."""
    body, digest = data[:-32], data[-32:]
    assert hashlib.sha256(body).digest() == digest, f"garbage delivered: {data[:40]!r}"
    return int(body.split(b";", 1)[0].removeprefix(b"seq="))


def drain(spool: Spool) -> list[int]:
    seqs = []
    while (record := spool.peek()) is not None:
        seqs.append(seq_of(record.payload))
        spool.commit(record)
    return seqs


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


# --------------------------------------------------------------------------- framing (pure)


def test_scan_finds_frames_and_resynchronises_after_a_damaged_one() -> None:
    frames = [frame(payload(n), 1000 + n) for n in range(1, 6)]
    data = bytearray(b"".join(frames))
    third = sum(len(f) for f in frames[:2])
    data[third + HEADER_BYTES + 5] ^= 0xFF  # flip a payload byte of record 3
    result = scan_segment(bytes(data), segment=7, start=0, max_record=1 << 20)
    kinds = [type(item).__name__ for item in result.entries]
    assert kinds == ["_Entry", "_Entry", "_Gap", "_Entry", "_Entry"]
    gap = result.entries[2]
    assert (gap.offset, gap.resume) == (third, third + len(frames[2]))
    assert result.valid_end == len(data)


def test_scan_treats_a_torn_last_frame_as_a_gap_to_the_end() -> None:
    frames = [frame(payload(n), n) for n in range(1, 4)]
    whole = b"".join(frames)
    torn = whole[: len(whole) - 10]
    result = scan_segment(torn, segment=1, start=0, max_record=1 << 20)
    assert [type(item).__name__ for item in result.entries] == ["_Entry", "_Entry", "_Gap"]
    assert result.valid_end == len(frames[0]) + len(frames[1])


def test_a_magic_inside_a_payload_does_not_fool_the_resync() -> None:
    tricky = b"SRSP" + b"\x10\x00\x00\x00" + b"junkjunk" * 8
    frames = [frame(payload(1), 1), frame(tricky, 2), frame(payload(3), 3)]
    data = bytearray(b"".join(frames))
    data[2] ^= 0x01  # break the first frame's magic
    result = scan_segment(bytes(data), segment=1, start=0, max_record=1 << 20)
    entries = [item for item in result.entries if type(item).__name__ == "_Entry"]
    assert [e.appended_at_ns for e in entries] == [2, 3]


# --------------------------------------------------------------------------- basic behaviour


def test_records_come_back_in_order_across_reopen_and_rotation(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1024, fsync="always") as spool:
        for n in range(1, 41):
            assert spool.append(payload(n))
        assert len(segments(tmp_path)) > 3
        first = [seq_of(spool.peek().payload) for _ in range(2)]  # type: ignore[union-attr]
        assert first == [1, 1], "peek does not consume"
        for _ in range(10):
            record = spool.peek()
            assert record is not None
            spool.commit(record)
    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1024) as spool:
        assert drain(spool) == list(range(11, 41))
        assert spool.stats().records == 0
        assert spool.stats().dropped_total == 0 and spool.stats().corrupt_total == 0
    # delivered segments are deleted; at most the active one (and the head's) remain
    assert len(segments(tmp_path)) <= 2


def test_appends_after_reopen_go_to_a_new_segment(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append(payload(1))
    before = segments(tmp_path)
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append(payload(2))
        assert drain(spool) == [1, 2]
    assert before[0].name == "0000000000000001.seg"
    assert before[0] not in segments(tmp_path) or len(segments(tmp_path)) == 1


def test_an_unreadable_cursor_resends_everything_rather_than_losing_it(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        for n in range(1, 4):
            spool.append(payload(n))
        record = spool.peek()
        assert record is not None
        spool.commit(record)
    (tmp_path / CURSOR_FILE).write_bytes(b"{not json")
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        assert drain(spool) == [1, 2, 3]


# --------------------------------------------------------------------------- damage on disk


def test_a_corrupted_middle_record_is_skipped_counted_and_the_rest_delivered(
    tmp_path: Path,
) -> None:
    with Spool(tmp_path, max_bytes=1 << 20, fsync="always") as spool:
        offsets = []
        for n in range(1, 11):
            offsets.append(spool.stats().bytes)
            spool.append(payload(n, size=200))
    (segment,) = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[offsets[4] + HEADER_BYTES + 50 : offsets[4] + HEADER_BYTES + 54] = b"\x00\xff\x00\xff"
    segment.write_bytes(bytes(data))
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        assert drain(spool) == [1, 2, 3, 4, 6, 7, 8, 9, 10]
        assert spool.stats().corrupt_total == 1
    with Spool(tmp_path, max_bytes=1 << 20) as spool:  # counted once, durably
        assert drain(spool) == []
        assert spool.stats().corrupt_total == 1


def test_a_destroyed_header_is_skipped_without_truncating_the_rest(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        offsets = []
        for n in range(1, 6):
            offsets.append(spool.stats().bytes)
            spool.append(payload(n))
    (segment,) = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[offsets[1] : offsets[1] + HEADER_BYTES] = os.urandom(HEADER_BYTES)  # record 2's header
    data[offsets[3] + 4] ^= 0x80  # record 4's length field
    segment.write_bytes(bytes(data))
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        assert drain(spool) == [1, 3, 5]
        assert spool.stats().corrupt_total == 2


def test_damage_after_open_is_caught_when_the_record_is_read(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        offsets = []
        for n in range(1, 4):
            offsets.append(spool.stats().bytes)
            spool.append(payload(n))
        spool.sync()
        (segment,) = segments(tmp_path)
        with open(segment, "r+b") as handle:  # bit rot under a running spool
            handle.seek(offsets[1] + HEADER_BYTES + 3)
            handle.write(b"!")
        assert drain(spool) == [1, 3]
        assert spool.stats().corrupt_total == 1


# --------------------------------------------------------------------------- real kill -9


def _run_writer(
    directory: Path, size: int, count: int, start: int, kill_after: int, tear: bool = False
) -> list[int]:
    """Start a real writer, SIGKILL it after ``kill_after`` confirmed appends; confirmed seqs.

    With ``tear`` the writer appends ``kill_after`` records, then half of one more frame, and
    is killed while it waits: a process that died inside a write.
    """
    args = [sys.executable, str(WRITER), str(directory), str(size)]
    args += [str(kill_after if tear else count), str(start), "tear" if tear else "-"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    confirmed = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "torn":
            proc.send_signal(signal.SIGKILL)
            break
        confirmed.append(int(line))
        if not tear and len(confirmed) >= kill_after:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # the writer may have appended a few more before the signal landed
    return confirmed


@pytest.mark.slow
def test_kill_9_during_writes_loses_no_synced_record_and_delivers_no_garbage(
    tmp_path: Path,
) -> None:
    confirmed: list[int] = []
    start = 1
    # Some rounds kill a writer that left half a frame on disk (died inside a write), others
    # kill it between appends; every round restarts on the same directory.
    rounds = [(3, True), (7, False), (2, True)]
    for round_, (kill_after, tear) in enumerate(rounds):
        confirmed += _run_writer(tmp_path, 64 * 1024, 1000, start, kill_after, tear)
        start = 1000 * (round_ + 1) + 1
        # drain a copy, so the next round still sees everything (and adds to it)
        copy = tmp_path.parent / f"{tmp_path.name}-copy{round_}"
        shutil.copytree(tmp_path, copy)
        with Spool(copy, max_bytes=1 << 30) as spool:
            delivered = drain(spool)
        assert set(confirmed) <= set(delivered)
        assert delivered == sorted(delivered), "order kept"
        # anything delivered beyond the confirmed ones is a whole, valid record (seq_of checks)
    with Spool(tmp_path, max_bytes=1 << 30) as spool:
        everything = drain(spool)
        assert set(confirmed) <= set(everything)
        assert spool.stats().records == 0
        # each torn write is one skipped region; it never hid the records after it. A round that
        # kills between appends may still land inside the next append (the writer runs on), so
        # it can leave one torn region too: at least the deliberate tears, at most one a round.
        tears = sum(tear for _, tear in rounds)
        assert tears <= spool.stats().corrupt_total <= len(rounds)
    with Spool(tmp_path, max_bytes=1 << 30) as spool:
        assert drain(spool) == []


@pytest.mark.slow
def test_kill_9_of_a_writer_with_a_reader_committing_keeps_exactly_the_undelivered(
    tmp_path: Path,
) -> None:
    with Spool(tmp_path, max_bytes=1 << 30) as spool:
        for n in range(1, 6):
            spool.append(payload(n))
        for _ in range(3):
            record = spool.peek()
            assert record is not None
            spool.commit(record)
    confirmed = _run_writer(tmp_path, 64 * 1024, 1000, 6, kill_after=8)
    with Spool(tmp_path, max_bytes=1 << 30) as spool:
        delivered = drain(spool)
    assert delivered[:2] == [4, 5], "committed records are not delivered again"
    assert set(confirmed) <= set(delivered)
    assert delivered == sorted(delivered)


# --------------------------------------------------------------------------- bounds


def test_a_tiny_spool_that_overflows_drops_the_oldest_and_counts_exactly(tmp_path: Path) -> None:
    record_bytes = HEADER_BYTES + len(payload(1))
    spool = Spool(
        tmp_path, max_bytes=10 * record_bytes, segment_bytes=3 * record_bytes, fsync="never"
    )
    appended = 57
    for n in range(1, appended + 1):
        assert spool.append(payload(n))
        assert spool.stats().bytes <= 10 * record_bytes
    stats = spool.stats()
    delivered = drain(spool)
    assert delivered == list(range(appended - len(delivered) + 1, appended + 1)), "newest kept"
    assert stats.dropped_total == appended - len(delivered)
    assert stats.dropped_total > 0
    spool.close()
    reopened = Spool(tmp_path, max_bytes=10 * record_bytes, segment_bytes=3 * record_bytes)
    assert reopened.stats().dropped_total == stats.dropped_total  # durable
    reopened.close()


def test_overflow_while_partly_read_counts_only_unread_records(tmp_path: Path) -> None:
    record_bytes = HEADER_BYTES + len(payload(1))
    spool = Spool(tmp_path, max_bytes=6 * record_bytes, segment_bytes=2 * record_bytes)
    for n in range(1, 5):
        spool.append(payload(n))
    for _ in range(1):  # deliver record 1; record 2 shares its segment
        record = spool.peek()
        assert record is not None
        spool.commit(record)
    for n in range(5, 11):
        spool.append(payload(n))
    delivered = drain(spool)
    stats = spool.stats()
    assert 1 not in delivered
    assert stats.dropped_total == 9 - len(delivered)
    assert delivered == list(range(11 - len(delivered), 11))
    spool.close()


def test_a_record_larger_than_the_spool_is_refused_and_counted(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1024) as spool:
        spool.append(payload(1))
        assert not spool.append(b"x" * 2000)
        assert spool.stats().dropped_total == 1
        assert drain(spool) == [1]


def test_records_older_than_max_age_are_dropped_and_counted(tmp_path: Path) -> None:
    now = [1_000_000_000_000]
    spool = Spool(tmp_path, max_bytes=1 << 20, max_age_s=60, clock_ns=lambda: now[0])
    for n in range(1, 4):
        spool.append(payload(n))
        now[0] += 10 * 10**9
    now[0] += 45 * 10**9  # record 1 is 75 s old, record 2 65 s, record 3 55 s
    assert drain(spool) == [3]
    assert spool.stats().dropped_total == 2
    spool.close()


def test_cursor_is_replaced_atomically_and_holds_the_counters(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1024, segment_bytes=256) as spool:
        for n in range(1, 30):
            spool.append(payload(n))
        drain(spool)
        stats = spool.stats()
    cursor = json.loads((tmp_path / CURSOR_FILE).read_bytes())
    assert cursor["dropped_total"] == stats.dropped_total > 0
    assert not list(tmp_path.glob(".tmp-*"))


def test_acknowledgements_within_a_segment_skip_the_durable_cursor(tmp_path: Path) -> None:
    # One segment: three commits rewrite only the in-place head; a reopen (as after kill -9,
    # the page cache survives) resumes after the last commit.
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        for n in range(1, 6):
            spool.append(payload(n))
        record = spool.peek()
        assert record is not None
        spool.commit(record)  # the first commit makes the cursor durable in this segment
        cursor_before = (tmp_path / CURSOR_FILE).read_bytes()
        inode_before = os.stat(tmp_path / CURSOR_FILE).st_ino
        for _ in range(2):
            record = spool.peek()
            assert record is not None
            spool.commit(record)
        assert (tmp_path / CURSOR_FILE).read_bytes() == cursor_before
        assert os.stat(tmp_path / CURSOR_FILE).st_ino == inode_before  # not replaced
        assert (tmp_path / HEAD_FILE).stat().st_size == 24
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        assert drain(spool) == [4, 5]


def test_a_torn_head_resends_from_the_durable_cursor_and_loses_nothing(tmp_path: Path) -> None:
    # After a power loss the head may be torn: the spool falls back to cursor.json and sends
    # the delivered batches of that segment again (duplicates), never skipping one.
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        for n in range(1, 6):
            spool.append(payload(n))
        for _ in range(3):
            record = spool.peek()
            assert record is not None
            spool.commit(record)
    head = bytearray((tmp_path / HEAD_FILE).read_bytes())
    head[12] ^= 0xFF  # a flipped byte of the offset: the CRC no longer checks
    (tmp_path / HEAD_FILE).write_bytes(bytes(head))
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        assert drain(spool) == [2, 3, 4, 5]  # from the durable cursor (after batch 1)


def test_segment_changes_and_counters_still_go_through_the_durable_cursor(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20, segment_bytes=256) as spool:
        for n in range(1, 13):
            spool.append(payload(n))
        assert len(segments(tmp_path)) > 2
        drained = drain(spool)
    assert drained == list(range(1, 13))
    cursor = json.loads((tmp_path / CURSOR_FILE).read_bytes())
    # the durable cursor followed the head into the last segment before the others went
    assert cursor["segment"] == int(segments(tmp_path)[-1].stem)
    (tmp_path / HEAD_FILE).unlink()  # even without the head, nothing delivered comes back
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        assert len(drain(spool)) <= 3  # at most the last segment's records again
