"""What is already known about a string column, remembered by the column's exact bytes.

A collector's metric and entity columns repeat batch after batch (the same sources, in the
same order, every interval), so the controller keeps proving the same facts about the same
strings: every value within its length limit and matching its pattern (validation), and the
column's canonical JSON (the digest). This cache remembers those facts per distinct column.

The key is the column's content exactly: its row count, its offsets and the string bytes
they span (a column with nulls is never cached). Equal keys mean equal strings, so a hit can
only return a fact proven for the same values; a column differing in one byte is a miss.

Bounded twice, least recently used first out: at most :data:`MAX_ENTRIES` columns and
:data:`MAX_BYTES` of keys and remembered values together; a column bigger than
:data:`MAX_COLUMN_BYTES` is not remembered at all. Thread-safe (decoding runs on worker
threads).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pyarrow as pa

MAX_ENTRIES = 1024
"""Columns remembered: two per collector (metric, entity) for 512 collectors."""
MAX_BYTES = 32 * 1024 * 1024
"""Keys plus remembered values, in bytes (memory the cache may hold)."""
MAX_COLUMN_BYTES = 1024 * 1024
"""A bigger column is checked every time instead (it would crowd out many small ones)."""

Key = tuple[int, bytes, bytes]


def column_key(values: pa.Array) -> Key | None:
    """The exact content of a string column: (rows, offsets, string bytes); ``None`` when it
    has nulls or is too big to remember."""
    if values.null_count or not pa.types.is_string(values.type):
        return None
    rows, offset = len(values), values.offset
    buffers = values.buffers()
    offsets = np.frombuffer(buffers[1], np.int32, rows + 1, offset * 4)
    first, last = int(offsets[0]), int(offsets[-1])
    if (rows + 1) * 4 + last - first > MAX_COLUMN_BYTES:
        return None
    data = b"" if buffers[2] is None else bytes(memoryview(buffers[2])[first:last])
    return rows, offsets.tobytes(), data


class ColumnCache:
    """A bounded LRU map from :func:`column_key` to a dict of facts about that column."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[Key, dict[str, Any]] = OrderedDict()
        self._sizes: dict[Key, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    def get(self, key: Key | None, fact: str) -> Any:
        """The remembered fact, or ``None``."""
        if key is None:
            return None
        with self._lock:
            facts = self._entries.get(key)
            if facts is None or fact not in facts:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return facts[fact]

    def put(self, key: Key | None, fact: str, value: Any) -> None:
        """Remember ``fact`` (bytes, or a small value) for the column, evicting as needed."""
        if key is None:
            return
        size = len(value) if isinstance(value, bytes) else 64
        with self._lock:
            facts = self._entries.get(key)
            if facts is None:
                facts = self._entries[key] = {}
                self._sizes[key] = len(key[1]) + len(key[2]) + 64
                self._bytes += self._sizes[key]
            elif fact in facts:
                return
            facts[fact] = value
            self._sizes[key] += size
            self._bytes += size
            self._entries.move_to_end(key)
            while self._entries and (len(self._entries) > self.max_entries
                                     or self._bytes > self.max_bytes):
                old, _ = self._entries.popitem(last=False)
                self._bytes -= self._sizes.pop(old)
                self.evictions += 1

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
            self._bytes = 0


STRING_COLUMNS = ColumnCache()
"""The process-wide cache shared by validation (:mod:`sreagent.telemetry.arrow`) and the
digest (:mod:`sreagent.telemetry._digest`)."""
