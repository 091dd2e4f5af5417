"""Bounded hot state: recent samples and events per host, in fixed-size ring buffers.

Bounds (settings ``hot_state``): at most ``max_hosts`` hosts (the least recently updated is
evicted), ``max_series_per_host`` series per host (a new series beyond it is dropped), and
``samples_per_series`` samples per series (the oldest is overwritten). Every eviction is
counted and exposed on /metrics and /api/v1/ingest/status. Appending a sample is amortised
O(1): a write into a numpy ring that starts at 16 slots and doubles up to its capacity. Memory
is therefore bounded by ``max_hosts * max_series_per_host * samples_per_series * 16`` bytes
plus events, and a series only takes that much once it has that many samples.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
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


@dataclass
class HostState:
    series: dict[SeriesKey, Ring] = field(default_factory=dict)
    events: deque[dict[str, Any]] = field(default_factory=deque)
    last_seen_ns: int = 0
    batches: int = 0
    collector_id: str = ""
    capabilities: list[dict[str, str]] = field(default_factory=list)
    process_count: int = 0


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

    def append(self, frame: BatchFrame) -> None:
        header = frame.header
        groups = _group_series(frame)
        events = frame.events.to_pylist() if frame.events.num_rows else []
        with self._lock:
            host = self._hosts.get(header.host)
            if host is None:
                host = HostState(events=deque(maxlen=self.events_per_host))
                self._hosts[header.host] = host
                while len(self._hosts) > self.max_hosts:
                    self._hosts.popitem(last=False)
                    self.evictions.hosts += 1
            else:
                self._hosts.move_to_end(header.host)
            for key, (ts, values) in groups.items():
                ring = host.series.get(key)
                if ring is None:
                    if len(host.series) >= self.max_series_per_host:
                        self.evictions.series_dropped += 1
                        continue
                    ring = host.series[key] = Ring(self.samples_per_series)
                self.evictions.samples_overwritten += ring.extend(ts, values)
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
            samples = sum(r.count for h in self._hosts.values() for r in h.series.values())
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
            ring = state.series.get((metric, entity, ())) if state else None
            return ring.last(n) if ring is not None else np.zeros(0)

    def window(self, host: str, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
        """Every series of ``host`` restricted to [start_ns, end_ns]."""
        with self._lock:
            state = self._hosts.get(host)
            rings = list(state.series.items()) if state else []
            out = []
            for (metric, entity, labels), ring in rings:
                ts, values = ring.arrays()
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


def _group_series(frame: BatchFrame) -> dict[SeriesKey, tuple[np.ndarray, np.ndarray]]:
    """The batch's samples split per series, in order of first appearance, each time-sorted.

    Vectorised: (metric, entity) become dictionary codes and one stable argsort groups them;
    only rows that carry labels are looked at one by one (most samples carry none).
    """
    samples = frame.samples
    n = samples.num_rows
    if n == 0:
        return {}
    metric = pc.dictionary_encode(samples.column("metric")).combine_chunks()
    entity = pc.dictionary_encode(samples.column("entity")).combine_chunks()
    metric_idx = metric.indices.to_numpy().astype(np.int64)
    entity_idx = entity.indices.to_numpy().astype(np.int64)
    codes = metric_idx * len(entity.dictionary) + entity_idx
    labels_col = samples.column("labels").combine_chunks()
    offsets = labels_col.offsets.to_numpy()
    has_labels = np.nonzero(np.diff(offsets))[0]
    label_sets: list[tuple[tuple[str, str], ...]] = [()]
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
    else:
        label_code = None
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.diff(codes[order], prepend=-1))
    ends = np.append(starts[1:], n)
    firsts = order[starts]  # each series' first row (stable sort: its lowest index)
    appearance = np.argsort(firsts, kind="stable")  # series in order of first appearance
    ts_sorted = samples.column("ts_ns").to_numpy()[order]
    values_sorted = samples.column("value").to_numpy()[order]
    metrics = metric.dictionary.to_pylist()
    entities = entity.dictionary.to_pylist()
    keys_m = metric_idx[firsts].tolist()
    keys_e = entity_idx[firsts].tolist()
    keys_l = label_code[firsts].tolist() if label_code is not None else None
    lo_all, hi_all = starts.tolist(), ends.tolist()
    out: dict[SeriesKey, tuple[np.ndarray, np.ndarray]] = {}
    for g in appearance.tolist():
        lo, hi = lo_all[g], hi_all[g]
        key = (metrics[keys_m[g]], entities[keys_e[g]],
               label_sets[keys_l[g]] if keys_l is not None else ())
        ts, values = ts_sorted[lo:hi], values_sorted[lo:hi]
        if hi - lo > 1 and np.any(np.diff(ts) < 0):
            order_in = np.argsort(ts, kind="stable")
            ts, values = ts[order_in], values[order_in]
        out[key] = (ts, values)
    return out
