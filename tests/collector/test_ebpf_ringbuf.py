"""The ring buffer consumer (``_bpfsys.RingBuffer``) on a memfd laid out as the kernel lays
out a BPF_MAP_TYPE_RINGBUF mapping: consumer page, producer page, data.

The kernel maps the data area twice in a row; a memfd does not, so records here do not wrap
(the wrapping itself is the kernel's double mapping, exercised by the root eBPF tests).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator

import pytest

from sreagent.collector._ebpf._bpfsys import (
    RINGBUF_BUSY,
    RINGBUF_DISCARD,
    RINGBUF_HEADER,
    RingBuffer,
)

PAGE = mmap.PAGESIZE
DATA = 4 * PAGE


@pytest.fixture
def ring_fd() -> Iterator[int]:
    fd = os.memfd_create("ringbuf-test")
    os.ftruncate(fd, PAGE + PAGE + 2 * DATA)
    try:
        yield fd
    finally:
        os.close(fd)


def _put(fd: int, position: int, payload: bytes, flags: int = 0) -> int:
    """Write one record at ``position``; returns the position after it (8-byte aligned)."""
    at = 2 * PAGE + (position & (DATA - 1))
    os.pwrite(fd, struct.pack("=II", len(payload) | flags, 0) + payload, at)
    return position + ((len(payload) + RINGBUF_HEADER + 7) & ~7)


def _positions(fd: int) -> tuple[int, int]:
    consumer = struct.unpack("=Q", os.pread(fd, 8, 0))[0]
    producer = struct.unpack("=Q", os.pread(fd, 8, PAGE))[0]
    return consumer, producer


def _set_producer(fd: int, position: int) -> None:
    os.pwrite(fd, struct.pack("=Q", position), PAGE)


def test_records_in_order_discarded_skipped_and_the_consumer_advanced(ring_fd: int) -> None:
    ring = RingBuffer(ring_fd, DATA)
    try:
        pos = _put(ring_fd, 0, b"first")
        pos = _put(ring_fd, pos, b"dropped by the program", RINGBUF_DISCARD)
        pos = _put(ring_fd, pos, b"x" * 300)
        _set_producer(ring_fd, pos)
        assert list(ring.records()) == [b"first", b"x" * 300]
        assert _positions(ring_fd) == (pos, pos)  # all of it released to the producer
        assert list(ring.records()) == []  # nothing new
    finally:
        ring.close()


def test_a_busy_record_stops_the_read_until_it_is_committed(ring_fd: int) -> None:
    ring = RingBuffer(ring_fd, DATA)
    try:
        pos = _put(ring_fd, 0, b"committed")
        busy_at = pos
        pos = _put(ring_fd, pos, b"still being written", RINGBUF_BUSY)
        after = _put(ring_fd, pos, b"after it")
        _set_producer(ring_fd, after)
        assert list(ring.records()) == [b"committed"]
        assert _positions(ring_fd)[0] == busy_at  # stopped before the busy record
        _put(ring_fd, busy_at, b"still being written")  # the producer commits it
        assert list(ring.records()) == [b"still being written", b"after it"]
        assert _positions(ring_fd)[0] == after
    finally:
        ring.close()


def test_the_consumer_position_survives_a_new_reader(ring_fd: int) -> None:
    first = RingBuffer(ring_fd, DATA)
    pos = _put(ring_fd, 0, b"one")
    _set_producer(ring_fd, pos)
    assert list(first.records()) == [b"one"]
    first.close()
    pos = _put(ring_fd, pos, b"two")
    _set_producer(ring_fd, pos)
    second = RingBuffer(ring_fd, DATA)
    try:
        assert list(second.records()) == [b"two"]  # continues where the consumer page says
    finally:
        second.close()


def test_a_size_that_is_not_a_power_of_two_is_refused(ring_fd: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        RingBuffer(ring_fd, 3 * PAGE)
