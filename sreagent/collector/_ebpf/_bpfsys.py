"""BPF maps read through the bpf(2) syscall, and a BPF ring buffer consumed through mmap.

The collector daemon holds map descriptors that a short-lived loader process created (see
``_loader.py``); reading them needs no BCC and no LLVM, only the stable syscall ABI of
include/uapi/linux/bpf.h and the ring buffer layout of kernel/bpf/ringbuf.c:

- ``union bpf_attr`` for the element commands: ``map_fd`` (u32, padded to 8), ``key``
  (u64 pointer), ``value``/``next_key`` (u64 pointer), ``flags`` (u64).
- A ring buffer map is mapped as a read-write consumer page at offset 0 and, at offset one
  page, a read-only producer page followed by the data area mapped twice in a row (so a
  record that wraps reads as one piece). Each record starts with an 8-byte header: the
  length in the low 30 bits of a u32 with BUSY (bit 31: still being written) and DISCARD
  (bit 30: dropped by the program) flags, then the page offset; records are padded to 8
  bytes. The consumer advances ``consumer_pos`` after reading, which frees the space.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import struct
from collections.abc import Iterator

BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_MAP_LOOKUP_AND_DELETE_ELEM = 21
"""For hash maps since Linux 5.14; older kernels answer EINVAL/ENOTSUPP (lookup, then delete)."""
BPF_MAP_LOOKUP_AND_DELETE_BATCH = 25
"""Since Linux 5.6: up to ``count`` elements per call, each hash bucket read and emptied under
its lock (no increment lost between the read and the delete)."""
BATCH = 1024
"""Elements asked for per batch call (more than any hash bucket holds, so never ENOSPC)."""
_NOT_SUPPORTED = (22, 95, 524)
"""EINVAL, EOPNOTSUPP, ENOTSUPP: the command does not exist for this map type or kernel."""

_SYSCALL_NR = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}

RINGBUF_BUSY = 1 << 31
RINGBUF_DISCARD = 1 << 30
RINGBUF_HEADER = 8
_U64 = struct.Struct("=Q")
_U32 = struct.Struct("=I")


class _ElemAttr(ctypes.Structure):
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _BatchAttr(ctypes.Structure):
    _fields_ = [
        ("in_batch", ctypes.c_uint64),
        ("out_batch", ctypes.c_uint64),
        ("keys", ctypes.c_uint64),
        ("values", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("map_fd", ctypes.c_uint32),
        ("elem_flags", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class Bpf:
    """The element commands of bpf(2) for one architecture's syscall number."""

    def __init__(self) -> None:
        machine = platform.machine()
        if machine not in _SYSCALL_NR:
            raise OSError(0, f"bpf syscall number unknown for {machine}")
        self._nr = _SYSCALL_NR[machine]
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._lookup_and_delete = True
        self._batch = True
        self._buffers: dict[tuple[int, int], tuple[ctypes.Array[ctypes.c_char], ...]] = {}

    def _call(self, cmd: int, attr: _ElemAttr | _BatchAttr) -> int:
        """0, or the (positive) errno."""
        ret = self._syscall(
            ctypes.c_long(self._nr),
            ctypes.c_int(cmd),
            ctypes.byref(attr),
            ctypes.c_uint(ctypes.sizeof(attr)),
        )
        return ctypes.get_errno() if ret < 0 else 0

    def lookup(self, fd: int, key: bytes, value_size: int) -> bytes | None:
        """The value under ``key``; None when there is none (ENOENT)."""
        k = ctypes.create_string_buffer(key, len(key))
        v = ctypes.create_string_buffer(value_size)
        attr = _ElemAttr(fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
        err = self._call(BPF_MAP_LOOKUP_ELEM, attr)
        if err == 0:
            return v.raw
        if err == 2:  # ENOENT
            return None
        raise OSError(err, f"BPF_MAP_LOOKUP_ELEM: {os.strerror(err)}")

    def keys(self, fd: int, key_size: int, limit: int) -> list[bytes]:
        """Every key of a map (at most ``limit``), by BPF_MAP_GET_NEXT_KEY from the start."""
        out: list[bytes] = []
        cur = ctypes.create_string_buffer(key_size)
        nxt = ctypes.create_string_buffer(key_size)
        attr = _ElemAttr(fd, 0, 0, ctypes.addressof(nxt), 0)  # key NULL: the first key
        while len(out) < limit:
            err = self._call(BPF_MAP_GET_NEXT_KEY, attr)
            if err == 2:  # ENOENT: no more keys
                break
            if err:
                raise OSError(err, f"BPF_MAP_GET_NEXT_KEY: {os.strerror(err)}")
            out.append(nxt.raw)
            ctypes.memmove(cur, nxt, key_size)
            attr.key = ctypes.addressof(cur)
        return out

    def take(self, fd: int, key: bytes, value_size: int) -> bytes | None:
        """Read and remove one element; atomic where the kernel has LOOKUP_AND_DELETE for the
        map type, else a lookup then a delete (an increment in between is lost, as with BCC's
        own fallback)."""
        k = ctypes.create_string_buffer(key, len(key))
        v = ctypes.create_string_buffer(value_size)
        attr = _ElemAttr(fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
        if self._lookup_and_delete:
            err = self._call(BPF_MAP_LOOKUP_AND_DELETE_ELEM, attr)
            if err == 0:
                return v.raw
            if err == 2:
                return None
            if err not in _NOT_SUPPORTED:
                raise OSError(err, f"BPF_MAP_LOOKUP_AND_DELETE_ELEM: {os.strerror(err)}")
            self._lookup_and_delete = False
        value = self.lookup(fd, key, value_size)
        if value is not None:
            err = self._call(BPF_MAP_DELETE_ELEM, attr)
            if err not in (0, 2):
                raise OSError(err, f"BPF_MAP_DELETE_ELEM: {os.strerror(err)}")
        return value

    def drain(
        self, fd: int, key_size: int, value_size: int, limit: int
    ) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of a hash map, removing what was read: in batches of
        :data:`BATCH` where the kernel has them (one syscall for a whole small map), else
        key by key (two or three syscalls per element)."""
        if self._batch:
            got = self._drain_batches(fd, key_size, value_size, limit)
            if got is not None:
                return got
        out = []
        for key in self.keys(fd, key_size, limit):
            value = self.take(fd, key, value_size)
            if value is not None:
                out.append((key, value))
        return out

    def _drain_batches(
        self, fd: int, key_size: int, value_size: int, limit: int
    ) -> list[tuple[bytes, bytes]] | None:
        """None when the kernel has no batch command for this map (fall back, per key)."""
        buffers = self._buffers.get((key_size, value_size))
        if buffers is None:
            token = max(key_size, 8)  # the hash map's batch token is a bucket number
            buffers = (
                ctypes.create_string_buffer(token),
                ctypes.create_string_buffer(token),
                ctypes.create_string_buffer(BATCH * key_size),
                ctypes.create_string_buffer(BATCH * value_size),
            )
            self._buffers[(key_size, value_size)] = buffers
        token_in, token_out, keys, values = buffers
        attr = _BatchAttr(
            0, ctypes.addressof(token_out), ctypes.addressof(keys), ctypes.addressof(values)
        )
        attr.map_fd = fd
        out: list[tuple[bytes, bytes]] = []
        first = True
        while len(out) < limit:
            attr.count = BATCH
            err = self._call(BPF_MAP_LOOKUP_AND_DELETE_BATCH, attr)
            if err and err != 2:  # ENOENT ends the walk, with the last elements still counted
                if first and err in _NOT_SUPPORTED:
                    self._batch = False
                    return None
                raise OSError(err, f"BPF_MAP_LOOKUP_AND_DELETE_BATCH: {os.strerror(err)}")
            first = False
            n = attr.count
            raw_keys = ctypes.string_at(ctypes.addressof(keys), n * key_size)
            raw_values = ctypes.string_at(ctypes.addressof(values), n * value_size)
            for i in range(n):
                out.append(
                    (
                        raw_keys[i * key_size : (i + 1) * key_size],
                        raw_values[i * value_size : (i + 1) * value_size],
                    )
                )
            if err == 2:
                break
            ctypes.memmove(token_in, token_out, len(token_in))
            attr.in_batch = ctypes.addressof(token_in)
        return out


class RingBuffer:
    """The consumer side of a BPF_MAP_TYPE_RINGBUF map, mapped from its descriptor."""

    def __init__(self, fd: int, data_size: int) -> None:
        if data_size <= 0 or data_size & (data_size - 1):
            raise ValueError(f"ring buffer size must be a power of two, got {data_size}")
        page = mmap.PAGESIZE
        self._mask = data_size - 1
        self._consumer = mmap.mmap(
            fd, page, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=0
        )
        try:
            self._producer = mmap.mmap(
                fd, page + 2 * data_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=page
            )
        except OSError:
            self._consumer.close()
            raise
        self._data_offset = page

    def records(self) -> Iterator[bytes]:
        """Every committed record in order, each handed out before its space is released."""
        consumer, producer = self._consumer, self._producer
        cons = _U64.unpack_from(consumer, 0)[0]
        while True:
            prod = _U64.unpack_from(producer, 0)[0]
            if cons >= prod:
                return
            while cons < prod:
                at = self._data_offset + (cons & self._mask)
                header = _U32.unpack_from(producer, at)[0]
                if header & RINGBUF_BUSY:
                    return  # the producer has reserved it and not committed yet: next time
                length = header & ~(RINGBUF_BUSY | RINGBUF_DISCARD)
                if not header & RINGBUF_DISCARD:
                    start = at + RINGBUF_HEADER
                    yield producer[start : start + length]
                cons += (length + RINGBUF_HEADER + 7) & ~7
                _U64.pack_into(consumer, 0, cons)

    def close(self) -> None:
        self._producer.close()
        self._consumer.close()
