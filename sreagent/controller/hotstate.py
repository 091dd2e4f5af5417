"""Bounded hot state: recent samples and events per host, in fixed-size ring buffers.

Bounds (settings ``hot_state``): at most ``max_hosts`` hosts (the least recently updated is
evicted), ``max_series_per_host`` series per host (a new series beyond it is dropped), and
``samples_per_series`` samples per series (the oldest is overwritten). Every eviction is
counted and exposed on /metrics and /api/v1/ingest/status.

Storage: per host one :class:`SeriesTable`, two numpy matrices (time, value) with a row per
series and a column per ring slot, plus each row's write position and fill. Appending a batch
is a handful of whole-batch numpy operations (group rows by series, scatter them into their
rows), not a Python loop per series: at a few hundred series per batch the loop was the
largest CPU cost of ingest. Appending a sample is amortised O(1): the matrices start 16 slots
wide and double, up to ``samples_per_series``, when a series needs more room. Memory is
bounded by ``max_hosts * max_series_per_host * samples_per_series * 16`` bytes plus events;
a host's matrix is as wide as its fullest series needs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sreagent.telemetry.arrow import BatchFrame

SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]
"""(metric, entity, sorted label pairs)."""


class Ring:
    """A ring of (ts_ns, value) holding at most ``capacity`` samples; oldest overwritten.

    Storage starts small and doubles until it reaches ``capacity`` (amortised O(1) appends),
    so a host with many short-lived series does not pay for full rings up front.
    """

    __slots__ = ("_ts", "_values", "capacity", "count", "pos")

    def __init__(self, capacity: int, initial: int = 16):
        self.capacity = capacity
        size = min(capacity, initial)
        # Uninitialised: only the first ``count`` slots (from ``pos``) are ever read.
        self._ts = np.empty(size, dtype=np.int64)
        self._values = np.empty(size, dtype=np.float64)
        self.count = 0
        self.pos = 0

    def _grow(self, needed: int) -> None:
        size = len(self._ts)
        if self.count + needed <= size or size == self.capacity:
            return
        new_size = min(self.capacity, max(size * 2, self.count + needed))
        ts, values = self.arrays()  # oldest first; count < size here, so pos == count
        self._ts = np.zeros(new_size, dtype=np.int64)
        self._values = np.zeros(new_size, dtype=np.float64)
        self._ts[: len(ts)], self._values[: len(values)] = ts, values
        self.pos = len(ts) % new_size

    def extend(self, ts: np.ndarray, values: np.ndarray) -> int:
        """Append samples in order; return how many older samples were overwritten."""
        n = len(ts)
        self._grow(n)
        cap = len(self._ts)
        if n >= cap:
            ts, values = ts[-cap:], values[-cap:]
            overwritten = self.count + n - cap
            self._ts[:], self._values[:] = ts, values
            self.pos, self.count = 0, cap
            return overwritten
        end = self.pos + n
        if end <= cap:
            self._ts[self.pos : end], self._values[self.pos : end] = ts, values
        else:
            first = cap - self.pos
            self._ts[self.pos :], self._values[self.pos :] = ts[:first], values[:first]
            self._ts[: n - first], self._values[: n - first] = ts[first:], values[first:]
        self.pos = end % cap
        overwritten = max(0, self.count + n - cap)
        self.count = min(cap, self.count + n)
        return overwritten

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(ts, values), oldest first."""
        size = len(self._ts)
        if self.count < size:
            return self._ts[: self.count].copy(), self._values[: self.count].copy()
        order = np.r_[self.pos : size, 0 : self.pos]
        return self._ts[order], self._values[order]

    def last(self, n: int) -> np.ndarray:
        _, values = self.arrays()
        return values[-n:]


class SeriesTable:
    """Rings of every series of one host: row ``i`` of ``ts``/``values`` is series
    ``keys[i]``'s ring. Same semantics as one :class:`Ring` per series (the tests hold it to
    that), but appends a whole batch with vectorised numpy.

    Invariant: while ``width < capacity`` no ring has wrapped, so a row's samples sit in
    columns ``[0, count)`` oldest first and growing the width is a plain copy.
    """

    __slots__ = ("capacity", "count", "keys", "pos", "slots", "ts", "values", "width")

    def __init__(self, capacity: int, initial: int = 16):
        self.capacity = capacity
        self.width = min(capacity, initial)
        self.slots: dict[SeriesKey, int] = {}
        self.keys: list[SeriesKey] = []
        self.ts = np.empty((0, self.width), np.int64)
        self.values = np.empty((0, self.width), np.float64)
        self.pos = np.zeros(0, np.int64)
        self.count = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.keys)

    def slot_for(self, key: SeriesKey, limit: int) -> int:
        """The row of ``key``, added if new; -1 when the host already has ``limit`` series."""
        slot = self.slots.get(key)
        if slot is not None:
            return slot
        if len(self.keys) >= limit:
            return -1
        slot = self.slots[key] = len(self.keys)
        self.keys.append(key)
        if slot >= len(self.pos):  # grow rows by a quarter (new series are rare)
            rows = max(slot + 1, len(self.pos) + max(8, len(self.pos) // 4))
            self._resize(rows, self.width)
        return slot

    def _resize(self, rows: int, width: int) -> None:
        old_rows, old_width = self.ts.shape
        ts = np.empty((rows, width), np.int64)
        values = np.empty((rows, width), np.float64)
        ts[:old_rows, :old_width] = self.ts
        values[:old_rows, :old_width] = self.values
        pos, count = np.zeros(rows, np.int64), np.zeros(rows, np.int64)
        pos[:old_rows], count[:old_rows] = self.pos, self.count
        if width != old_width:  # unwrapped rings (the invariant): write on after the fill
            pos[:old_rows] = count[:old_rows]
        self.ts, self.values, self.pos, self.count, self.width = ts, values, pos, count, width

    def extend(self, slots: np.ndarray, sizes: np.ndarray, ts: np.ndarray,
               values: np.ndarray) -> int:
        """Append ``sizes[g]`` samples to row ``slots[g]`` for each group ``g``; ``ts`` and
        ``values`` hold the groups one after the other, each in time order. Rows must be
        distinct. Return how many older samples were overwritten."""
        if len(slots) == 0:
            return 0
        needed = int((self.count[slots] + sizes).max())
        if needed > self.width and self.width < self.capacity:
            self._resize(len(self.pos), min(self.capacity, max(2 * self.width, needed)))
        width = self.width
        starts = np.cumsum(sizes) - sizes
        row_group = np.repeat(np.arange(len(slots)), sizes)
        rank = np.arange(len(ts)) - starts[row_group]
        keep = rank >= (sizes - width)[row_group]  # a group larger than a ring: its newest
        rows = slots[row_group]
        columns = (self.pos[rows] + rank) % width
        self.ts[rows[keep], columns[keep]] = ts[keep]
        self.values[rows[keep], columns[keep]] = values[keep]
        total = self.count[slots] + sizes
        overwritten = int(np.maximum(total - width, 0).sum())
        self.count[slots] = np.minimum(total, width)
        self.pos[slots] = (self.pos[slots] + sizes) % width
        return overwritten

    def arrays(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``slot``'s (ts, values), oldest first."""
        count, pos = int(self.count[slot]), int(self.pos[slot])
        if count < self.width:  # never wrapped (a ring only wraps once full)
            return self.ts[slot, :count].copy(), self.values[slot, :count].copy()
        order = np.r_[pos : self.width, 0:pos]
        return self.ts[slot, order], self.values[slot, order]

    def samples(self) -> int:
        return int(self.count.sum())


@dataclass
class HostState:
    series: SeriesTable
    events: deque[dict[str, Any]] = field(default_factory=deque)
    last_seen_ns: int = 0
    batches: int = 0
    collector_id: str = ""
    capabilities: list[dict[str, str]] = field(default_factory=list)
    process_count: int = 0
    layout: tuple[Any, np.ndarray] | None = None
    """(series layout of the last batch, its rows in ``series``): a collector sends the same
    series in the same order every interval, so the next batch usually reuses the rows
    without building a key per series and looking each one up."""
    grouping: tuple[bytes, np.ndarray, np.ndarray, np.ndarray] | None = None
    """(series keys digest of the last batch, each row's series, rows per series, their rows
    in ``series``): a batch with the same keys digest skips the grouping altogether."""


@dataclass
class Evictions:
    hosts: int = 0
    series_dropped: int = 0
    samples_overwritten: int = 0
    events_overwritten: int = 0


class HotState:
    """Per-host rings of recent telemetry; thread-safe."""

    def __init__(
        self,
        *,
        max_hosts: int,
        max_series_per_host: int,
        samples_per_series: int,
        events_per_host: int,
    ):
        self.max_hosts = max_hosts
        self.max_series_per_host = max_series_per_host
        self.samples_per_series = samples_per_series
        self.events_per_host = events_per_host
        self._hosts: OrderedDict[str, HostState] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = Evictions()
        self.samples_total = 0

    def append(self, frame: BatchFrame, keys_digest: bytes | None = None) -> None:
        """Add a batch's samples and events. ``keys_digest`` (:func:`series_keys_digest`,
        from the decoder) equal to the host's last one reuses that batch's grouping: one sort
        by series and time instead of grouping the rows again."""
        header = frame.header
        known = self._hosts.get(header.host)  # a peek; checked again under the lock
        cached = known.grouping if known is not None else None
        reuse = keys_digest is not None and cached is not None and cached[0] == keys_digest
        if reuse:
            assert cached is not None
            _, group, sizes, slots = cached
            all_ts = frame.samples.column("ts_ns").to_numpy()
            order = np.lexsort((all_ts, group))  # stable: equal times keep arrival order
            ts, values = all_ts[order], frame.samples.column("value").to_numpy()[order]
            grouped = None
        else:
            grouped = _series_layout(frame)
        events = frame.events.to_pylist() if frame.events.num_rows else []
        with self._lock:
            host = self._hosts.get(header.host)
            if host is None:
                host = HostState(series=SeriesTable(self.samples_per_series),
                                 events=deque(maxlen=self.events_per_host))
                self._hosts[header.host] = host
                while len(self._hosts) > self.max_hosts:
                    self._hosts.popitem(last=False)
                    self.evictions.hosts += 1
            else:
                self._hosts.move_to_end(header.host)
            if reuse and host.grouping is not cached:  # changed since the peek
                reuse, grouped = False, _series_layout(frame)
            if grouped is not None:
                layout, keys_of, sizes, ts, values, group = grouped
                table = host.series
                if host.layout is not None and host.layout[0] == layout:
                    # Same series as last time: same rows (rows are never taken away, and a
                    # series refused at the limit stays refused, as the table only fills).
                    slots = host.layout[1]
                else:
                    keys = keys_of()
                    limit = self.max_series_per_host
                    slots = np.fromiter((table.slot_for(k, limit) for k in keys), np.int64,
                                        len(keys))
                    host.layout = (layout, slots)
                host.grouping = (None if keys_digest is None
                                 else (keys_digest, group, sizes, slots))
            if reuse or grouped is not None:
                dropped = slots < 0
                if dropped.any():
                    self.evictions.series_dropped += int(dropped.sum())
                    rows = np.repeat(~dropped, sizes)
                    slots, sizes, ts, values = slots[~dropped], sizes[~dropped], ts[rows], values[rows]
                self.evictions.samples_overwritten += host.series.extend(slots, sizes, ts, values)
            for ev in events:
                if len(host.events) == host.events.maxlen:
                    self.evictions.events_overwritten += 1
                host.events.append(
                    {k: ev[k] for k in ("ts_ns", "kind", "entity", "severity", "message")}
                )
            host.last_seen_ns = max(host.last_seen_ns, header.sent_at_ns)
            host.batches += 1
            host.collector_id = header.collector_id
            host.capabilities = [c.model_dump() for c in header.capabilities]
            host.process_count = frame.processes.num_rows
            self.samples_total += frame.samples.num_rows

    # --- reads -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            series = sum(len(h.series) for h in self._hosts.values())
            samples = sum(h.series.samples() for h in self._hosts.values())
            events = sum(len(h.events) for h in self._hosts.values())
            return {
                "hosts": len(self._hosts),
                "series": series,
                "samples": samples,
                "events": events,
                "evictions": dict(self.evictions.__dict__),
                "limits": {
                    "max_hosts": self.max_hosts,
                    "max_series_per_host": self.max_series_per_host,
                    "samples_per_series": self.samples_per_series,
                    "events_per_host": self.events_per_host,
                },
            }

    def hosts(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                name: {
                    "last_seen_ns": h.last_seen_ns,
                    "batches": h.batches,
                    "collector_id": h.collector_id,
                    "series": len(h.series),
                    "process_count": h.process_count,
                    "capabilities": list(h.capabilities),
                }
                for name, h in self._hosts.items()
            }

    def last_values(self, host: str, metric: str, entity: str, n: int) -> np.ndarray:
        """The newest ``n`` values of the unlabelled series (metric, entity) of ``host``."""
        with self._lock:
            state = self._hosts.get(host)
            slot = state.series.slots.get((metric, entity, ())) if state else None
            if state is None or slot is None:
                return np.zeros(0)
            return state.series.arrays(slot)[1][-n:]

    def window(self, host: str, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
        """Every series of ``host`` restricted to [start_ns, end_ns]."""
        with self._lock:
            state = self._hosts.get(host)
            table = state.series if state else SeriesTable(self.samples_per_series)
            out = []
            for slot, (metric, entity, labels) in enumerate(table.keys):
                ts, values = table.arrays(slot)
                keep = (ts >= start_ns) & (ts <= end_ns)
                if keep.any():
                    out.append(
                        {
                            "metric": metric,
                            "entity": entity,
                            "labels": dict(labels),
                            "ts_ns": ts[keep],
                            "values": values[keep],
                        }
                    )
            return out


def series_keys_digest(samples: pa.Table) -> bytes | None:
    """BLAKE2b of the samples' series keys row by row (metric, entity, labels): equal digests
    mean the same series in the same row order, so a host can reuse the last batch's grouping
    (:meth:`HotState.append`). Cheap (it hashes the columns' bytes, no grouping), so it is
    computed where the batch is decoded; None for a batch without samples."""
    if samples.num_rows == 0:
        return None
    digest = hashlib.blake2b(digest_size=20)
    digest.update(samples.num_rows.to_bytes(8, "little"))
    for name in ("metric", "entity"):
        _hash_strings(digest, _one_chunk(samples.column(name)))
    labels = _one_chunk(samples.column("labels"))
    offsets = np.asarray(labels.offsets)  # absolute positions in the key/item children
    lo, hi = int(offsets[0]), int(offsets[-1])
    digest.update(labels.null_count.to_bytes(8, "little"))
    digest.update((offsets - lo).astype("<i8").tobytes())
    _hash_strings(digest, labels.keys.slice(lo, hi - lo))
    _hash_strings(digest, labels.items.slice(lo, hi - lo))
    return digest.digest()


def _one_chunk(column: pa.ChunkedArray) -> Any:
    # Decoded batches have one chunk; more (rare) are joined so chunking never counts.
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _hash_strings(digest: Any, strings: pa.Array) -> None:
    """Feed a (possibly sliced) string array's logical content: length, null count, relative
    offsets and the bytes they span. Padding or bytes outside the slice never count."""
    n = len(strings)
    digest.update(n.to_bytes(8, "little"))
    digest.update(strings.null_count.to_bytes(8, "little"))
    if n == 0:
        return
    _, offsets_buf, data = strings.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32, n + 1, strings.offset * 4)
    lo, hi = int(offsets[0]), int(offsets[-1])
    digest.update((offsets - lo).astype("<i8").tobytes())
    if data is not None and hi > lo:
        digest.update(memoryview(data)[lo:hi])


def _series_rows(
    frame: BatchFrame,
) -> tuple[list[SeriesKey], np.ndarray, np.ndarray, np.ndarray] | None:
    """The batch's samples grouped per series: (keys in order of first appearance, group
    sizes, ts, values), the groups one after the other, each stably sorted by time. None for
    a batch without samples."""
    grouped = _series_layout(frame)
    if grouped is None:
        return None
    _, keys_of, sizes, ts, values, _ = grouped
    return keys_of(), sizes, ts, values


def _series_layout(
    frame: BatchFrame,
) -> tuple[Any, Callable[[], list[SeriesKey]], np.ndarray, np.ndarray, np.ndarray,
           np.ndarray] | None:
    """:func:`_series_rows` with the keys built on demand, and beside them a comparable
    *layout* (the dictionaries and the series codes in order of appearance) that determines
    the keys: equal layouts, equal keys in the same order; last, each row's series (its index
    in order of first appearance).

    Vectorised: (metric, entity) become dictionary codes and one stable lexsort groups them
    by series and time; only rows that carry labels are looked at one by one (most samples
    carry none).
    """
    samples = frame.samples
    n = samples.num_rows
    if n == 0:
        return None
    metric = pc.dictionary_encode(samples.column("metric")).combine_chunks()
    entity = pc.dictionary_encode(samples.column("entity")).combine_chunks()
    metric_idx = metric.indices.to_numpy().astype(np.int64)
    entity_idx = entity.indices.to_numpy().astype(np.int64)
    codes = metric_idx * len(entity.dictionary) + entity_idx
    labels_col = samples.column("labels").combine_chunks()
    offsets = labels_col.offsets.to_numpy()
    has_labels = np.nonzero(np.diff(offsets))[0]
    label_sets: list[tuple[tuple[str, str], ...]] = [()]
    label_code = None
    if len(has_labels):
        keys = labels_col.keys.to_pylist()
        items = labels_col.items.to_pylist()
        label_code = np.zeros(n, dtype=np.int64)
        seen: dict[tuple[tuple[str, str], ...], int] = {(): 0}
        for i in has_labels.tolist():
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            labels = tuple(sorted(zip(keys[lo:hi], items[lo:hi], strict=True)))
            code = seen.get(labels)
            if code is None:
                code = seen[labels] = len(label_sets)
                label_sets.append(labels)
            label_code[i] = code
        codes = codes * len(label_sets) + label_code
    all_ts = samples.column("ts_ns").to_numpy()
    # Series by first appearance: rank each distinct code by the row it first occurs in.
    unique_codes, first_rows = np.unique(codes, return_index=True)
    appearance = np.argsort(first_rows, kind="stable")
    rank_of = np.empty(len(unique_codes), np.int64)
    rank_of[appearance] = np.arange(len(unique_codes))
    group = rank_of[np.searchsorted(unique_codes, codes)]
    order = np.lexsort((all_ts, group))  # stable: equal times keep arrival order
    sizes = np.bincount(group, minlength=len(unique_codes))
    firsts = first_rows[appearance]
    metrics = metric.dictionary.to_pylist()
    entities = entity.dictionary.to_pylist()
    layout = (tuple(metrics), tuple(entities), tuple(label_sets),
              unique_codes[appearance].tobytes())

    def keys_of() -> list[SeriesKey]:
        keys_m = metric_idx[firsts].tolist()
        keys_e = entity_idx[firsts].tolist()
        if label_code is not None:
            keys_l = label_code[firsts].tolist()
            return [(metrics[m], entities[e], label_sets[lc])
                    for m, e, lc in zip(keys_m, keys_e, keys_l, strict=True)]
        return [(metrics[m], entities[e], ()) for m, e in zip(keys_m, keys_e, strict=True)]

    return (layout, keys_of, sizes, all_ts[order], samples.column("value").to_numpy()[order],
            group)


def _group_series(frame: BatchFrame) -> dict[SeriesKey, tuple[np.ndarray, np.ndarray]]:
    """The batch's samples split per series, in order of first appearance, each time-sorted
    (:func:`_series_rows` as a dict; for tests and readers that want it per series)."""
    grouped = _series_rows(frame)
    if grouped is None:
        return {}
    keys, sizes, ts, values = grouped
    bounds = np.cumsum(sizes).tolist()
    out: dict[SeriesKey, tuple[np.ndarray, np.ndarray]] = {}
    lo = 0
    for key, hi in zip(keys, bounds, strict=True):
        out[key] = (ts[lo:hi], values[lo:hi])
        lo = hi
    return out
