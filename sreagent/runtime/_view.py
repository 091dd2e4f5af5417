"""The evidence view: the telemetry window a role reads, as immutable numpy series.

Roles never touch files, sockets or the collector. They read an :class:`EvidenceView`, built
once from batch frames or from an evidence package's tables (the same tables, so a replay
reads exactly what the live run read). Every series is a pair of sorted numpy arrays; the view
also keeps which batch each row came from, so an artifact's evidence reference can name the
batches that hold its raw rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from sreagent.errors import BadInput
from sreagent.runtime._columns import (
    DENSE_LIMIT,
    codes,
    dense_renumber,
    distinct_strings,
    equals,
    label_set_codes,
    label_text,
    without_dictionaries,
)
from sreagent.telemetry.arrow import BatchFrame
from sreagent.telemetry.batch import Inventory

LabelKey = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, str, LabelKey]


@dataclass(frozen=True)
class Series:
    """One metric of one entity with one label set, sorted by time."""

    metric: str
    entity: str
    labels: LabelKey
    ts: np.ndarray
    """int64 ns since the epoch, ascending."""
    values: np.ndarray
    """float64, aligned with ``ts``."""

    def label(self, key: str, default: str = "") -> str:
        for k, v in self.labels:
            if k == key:
                return v
        return default

    @property
    def key(self) -> SeriesKey:
        return (self.metric, self.entity, self.labels)

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@dataclass(frozen=True)
class SeriesStats:
    """Per-series figures of a view, aligned with ``keys`` (the view's ``series`` order)."""

    keys: tuple[SeriesKey, ...]
    count: np.ndarray
    last: np.ndarray
    mean: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray


@dataclass(frozen=True)
class EventRow:
    ts_ns: int
    kind: str
    entity: str
    source: str
    severity: str
    message: str
    attributes: dict[str, str]
    batch_id: str


@dataclass(frozen=True)
class EvidenceView:
    """One host's telemetry window, read-only."""

    host: str
    start_ns: int
    end_ns: int
    resolution_s: float
    series: dict[SeriesKey, Series]
    events: tuple[EventRow, ...]
    processes: pl.DataFrame
    inventory: Inventory | None
    source_modes: dict[str, str]
    batch_ids: tuple[str, ...]
    batch_first_ns: np.ndarray
    batch_last_ns: np.ndarray
    expected_interval_s: float
    grid: np.ndarray
    """Every distinct sample time of the window, ascending."""
    _by_metric: dict[str, list[SeriesKey]] = field(default_factory=dict, repr=False)
    memo: dict[object, object] = field(default_factory=dict, repr=False, compare=False)
    _column: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False,
                                                         compare=False)
    """Every series' values back to back in ``series`` order, and where each one starts
    (plus the end): what :meth:`series_stats` reduces in one call per statistic."""
    """Derived results (the detections of a config) shared by roles reading this view; a
    pure function of the view, so caching them changes nothing but the time taken."""

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def from_frames(cls, frames: Sequence[BatchFrame], *, host: str | None = None,
                    start_ns: int | None = None, end_ns: int | None = None) -> EvidenceView:
        """Build the view of decoded batch frames (what the controller holds)."""
        if not frames:
            raise BadInput("an evidence view needs at least one batch", field="frames")
        hosts = sorted({f.header.host for f in frames})
        host = _pick_host(hosts, host)
        frames = [f for f in frames if f.header.host == host]
        last = max(frames, key=lambda f: (f.header.sent_at_ns, f.header.seq))
        inventory = next(
            (f.header.inventory for f in sorted(frames, key=lambda f: -f.header.seq)
             if f.header.inventory is not None), None)
        modes: dict[str, str] = {c.source: c.mode for c in last.header.capabilities}
        batch_ids = pa.array([f.batch_id for f in frames], pa.string())
        return cls._build(host, _stack(frames, "samples", batch_ids, host),
                          _stack(frames, "processes", batch_ids, host),
                          _stack(frames, "events", batch_ids, host),
                          inventory, modes, start_ns, end_ns)

    @classmethod
    def from_tables(cls, tables: dict[str, pa.Table], *, host: str | None = None,
                    start_ns: int | None = None, end_ns: int | None = None) -> EvidenceView:
        """Build the view of an evidence package's or the journal's tables."""
        for name in ("samples", "processes", "events"):
            if name not in tables:
                raise BadInput("missing from the telemetry tables", field=name)
        hosts = _hosts_of(tables["samples"])
        host = _pick_host(hosts, host)

        def only(t: pa.Table) -> pa.Table:
            # Most packages hold one host: filtering would copy every column for nothing.
            if not t.num_rows or (hosts if t is tables["samples"] else _hosts_of(t)) == [host]:
                return t
            return t.filter(equals(t.column("host"), host))

        inventory = None
        modes: dict[str, str] = {}
        batches = tables.get("batches")
        if batches is not None and batches.num_rows:
            inventory, modes = _header_state(only(batches))
        return cls._build(host, only(tables["samples"]), only(tables["processes"]),
                          only(tables["events"]), inventory, modes, start_ns, end_ns)

    @classmethod
    def _build(cls, host: str, samples: pa.Table, processes: pa.Table, events: pa.Table,
               inventory: Inventory | None, modes: dict[str, str],
               start_ns: int | None, end_ns: int | None) -> EvidenceView:
        if samples.num_rows == 0:
            raise BadInput(f"host {host!r} has no samples in this window", field="samples")
        ts_rows = _numpy(samples.column("ts_ns"))
        lo = int(ts_rows.min()) if start_ns is None else start_ns
        hi = int(ts_rows.max()) if end_ns is None else end_ns
        if hi < lo:
            raise BadInput("the window ends before it starts", field="end_ns")
        if start_ns is not None or end_ns is not None:
            inside = (ts_rows >= lo) & (ts_rows <= hi)
            if not inside.all():
                samples, ts_rows = samples.filter(pa.array(inside)), ts_rows[inside]
            events = _within(events, lo, hi)
            processes = _within(processes, lo, hi)
        # Chunks stay as they are: the key columns are numbered chunk by chunk from their
        # dictionaries (joining them would copy every row for nothing).
        series, grid, column = _series_of(samples, ts_rows)
        batch_ids, batch_first, batch_last = _batch_spans(samples, ts_rows)
        resolution = float(np.median(np.diff(grid)) / 1e9) if grid.shape[0] > 1 else 1.0
        event_rows = tuple(
            EventRow(ts_ns=r["ts_ns"], kind=r["kind"], entity=r["entity"], source=r["source"],
                     severity=r["severity"], message=r["message"],
                     attributes=dict(r["attributes"] or []), batch_id=r["batch_id"])
            for r in sorted(events.to_pylist(), key=lambda r: (r["ts_ns"], r["kind"],
                                                                 r["entity"]))
        ) if events.num_rows else ()
        # Strings as the contract types them (a package's are read as dictionaries), in one
        # chunk: a frame-built table has a chunk per batch, and every filter a role runs on a
        # many-chunk frame pays per chunk.
        procs = pl.from_arrow(
            _in_time_order(without_dictionaries(processes)).combine_chunks()) \
            if processes.num_rows else pl.DataFrame()
        assert isinstance(procs, pl.DataFrame)
        by_metric: dict[str, list[SeriesKey]] = {}
        for key in series:
            by_metric.setdefault(key[0], []).append(key)
        return cls(
            host=host, start_ns=lo, end_ns=hi, resolution_s=max(resolution, 1e-3),
            series=series, events=event_rows, processes=procs, inventory=inventory,
            source_modes=modes, batch_ids=batch_ids,
            batch_first_ns=batch_first, batch_last_ns=batch_last,
            expected_interval_s=max(resolution, 1e-3), grid=grid, _by_metric=by_metric,
            _column=column,
        )

    # --- reading ----------------------------------------------------------------------------

    def metric(self, name: str) -> list[Series]:
        """Every series of a metric, in a stable order (entity, labels)."""
        return [self.series[k] for k in self._by_metric.get(name, ())]

    def get(self, name: str, entity: str = "host", **labels: str) -> Series | None:
        """One series, or None when the window lacks it."""
        return self.series.get((name, entity, tuple(sorted(labels.items()))))

    def metrics(self) -> list[str]:
        return sorted(self._by_metric)

    def events_of(self, *kinds: str) -> list[EventRow]:
        return [e for e in self.events if not kinds or e.kind in kinds]

    def batches_between(self, start_ns: int, end_ns: int, *, limit: int = 64) -> list[str]:
        """Ids of the batches holding rows between two instants (the first ``limit``)."""
        hit = np.nonzero((self.batch_last_ns >= start_ns) & (self.batch_first_ns <= end_ns))[0]
        return [self.batch_ids[i] for i in hit[:limit]]

    @property
    def sample_count(self) -> int:
        if self._column is not None:  # every series' values back to back
            return int(self._column[0].shape[0])
        return sum(len(s) for s in self.series.values())

    def series_stats(self) -> SeriesStats:
        """Count, last, mean, minimum and maximum of every series, in ``series`` order.

        Each figure has the same bits as the numpy call on the series alone (``v[-1]``,
        ``v.mean()``, ``v.min()``, ``v.max()``); last, minimum and maximum come from one
        vectorised call each. Means are summed per length: the series of one length as the
        rows of one block, each row with numpy's pairwise summation, as ``v.mean()`` sums
        (``add.reduceat`` over slices sums straight through and differs in the last bit).
        Empty series have count 0 and NaN.
        """
        found = self.memo.get(SeriesStats)
        if isinstance(found, SeriesStats):
            return found
        keys = tuple(self.series)
        if self._column is not None:
            values, bounds = self._column
            counts = np.diff(bounds)
            full = counts > 0
            starts = bounds[:-1][full]
            nan = np.full(len(keys), np.nan)
            last, mean, lo, hi = nan.copy(), nan.copy(), nan.copy(), nan.copy()
            if starts.shape[0]:
                last[full] = values[bounds[1:][full] - 1]
                mean[full] = _means(values, bounds[:-1][full], counts[full])
                lo[full] = np.minimum.reduceat(values, starts)
                hi[full] = np.maximum.reduceat(values, starts)
        else:
            each = [self.series[k].values for k in keys]
            counts = np.array([v.shape[0] for v in each], np.int64)
            last = np.array([v[-1] if v.shape[0] else np.nan for v in each], np.float64)
            mean = np.array([v.mean() if v.shape[0] else np.nan for v in each], np.float64)
            lo = np.array([v.min() if v.shape[0] else np.nan for v in each], np.float64)
            hi = np.array([v.max() if v.shape[0] else np.nan for v in each], np.float64)
        stats = SeriesStats(keys, counts, last, mean, lo, hi)
        self.memo[SeriesStats] = stats
        return stats

    @property
    def cpu_count(self) -> int:
        return self.inventory.cpu_count if self.inventory and self.inventory.cpu_count else 0

    def disk_kind(self, device: str) -> str:
        """``nvme``, ``ssd``, ``hdd``, ``virtual`` or ``unknown`` from the inventory."""
        if self.inventory:
            for disk in self.inventory.disks:
                if disk.name == device:
                    if disk.kind == "unknown" and disk.rotational:
                        return "hdd"
                    return disk.kind
        return "unknown"


def _means(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The mean of each slice ``values[start:start + count]``, bit for bit as ``.mean()``
    gives it: the slices of one length form the rows of a block (a view when they lie back
    to back, as a view's series of one length usually do) summed along the rows, where
    numpy uses the same pairwise summation as for one array."""
    out = np.empty(starts.shape[0], np.float64)
    for length in np.unique(counts).tolist():
        which = np.flatnonzero(counts == length)
        first = starts[which]
        if np.array_equal(first, first[0] + length * np.arange(which.shape[0])):
            block = values[first[0]:first[0] + length * which.shape[0]].reshape(-1, length)
        else:
            block = values[first[:, None] + np.arange(length)]
        out[which] = np.add.reduce(block, axis=1) / length
    return out


def _pick_host(hosts: list[str], host: str | None) -> str:
    if host is None:
        if len(hosts) != 1:
            raise BadInput(f"the telemetry holds {len(hosts)} hosts ({', '.join(hosts[:5])}); "
                           "name one", field="host")
        return hosts[0]
    if host not in hosts:
        raise BadInput(f"host {host!r} is not in the telemetry", field="host")
    return host


def _hosts_of(table: pa.Table) -> list[str]:
    return distinct_strings(table.column("host"))


def _numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    out: np.ndarray = column.to_numpy(zero_copy_only=False)
    return out


def _stack(frames: Sequence[BatchFrame], name: str, batch_ids: pa.Array, host: str) -> pa.Table:
    """One row table of many frames, with ``batch_id`` and ``host`` columns in front (the
    layout of a package's tables), built with one ``take`` instead of a column per frame."""
    tables = [getattr(f, name) for f in frames]
    rows = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    counts = np.fromiter((t.num_rows for t in tables), np.int64, len(tables))
    owner = np.repeat(np.arange(len(tables), dtype=np.int64), counts)
    return rows.add_column(0, "host", pa.repeat(pa.scalar(host, pa.string()), rows.num_rows)) \
        .add_column(0, "batch_id", batch_ids.take(pa.array(owner)))


def _within(table: pa.Table, lo: int, hi: int) -> pa.Table:
    """Rows with ``lo <= ts_ns <= hi`` (the table itself when every row already is)."""
    if not table.num_rows:
        return table
    ts = table.column("ts_ns")
    bounds = pc.min_max(ts)
    if bounds["min"].as_py() >= lo and bounds["max"].as_py() <= hi:
        return table
    return table.filter(pc.and_(pc.greater_equal(ts, lo), pc.less_equal(ts, hi)))


def _in_time_order(table: pa.Table) -> pa.Table:
    """Process rows sorted by (time, pid), so the view does not depend on the order batches
    or rows arrived in (the table itself when already sorted, as a package's always is)."""
    ts = _numpy(table.column("ts_ns"))
    pid = _numpy(table.column("pid")) if "pid" in table.column_names else np.zeros_like(ts)
    if ts.shape[0] < 2:
        return table
    step = np.diff(ts)
    if step.min() >= 0 and bool(np.all(np.diff(pid)[step == 0] > 0)):
        return table
    return table.take(pa.array(np.lexsort((pid, ts))))


def _header_state(batches: pa.Table) -> tuple[Inventory | None, dict[str, str]]:
    """The inventory of the last batch (by send time, then sequence) that carried one, and
    the source modes of the last batch."""
    order = np.lexsort((_numpy(batches.column("seq")), _numpy(batches.column("sent_at_ns"))))
    last = int(order[-1])
    modes = {c["source"]: c["mode"]
             for c in batches.column("capabilities")[last].as_py() or []}
    carried = _numpy(pc.is_valid(batches.column("inventory")))
    with_inventory = order[carried[order]]
    inventory = None
    if with_inventory.shape[0]:
        inventory = Inventory.model_validate(
            batches.column("inventory")[int(with_inventory[-1])].as_py())
    return inventory, modes


def _series_of(
    samples: pa.Table, ts_raw: np.ndarray,
) -> tuple[dict[SeriesKey, Series], np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Every series of the samples (in (metric, entity, label key) order) and the grid.

    Rows are grouped by their key columns' dictionary codes (_columns.py): no row's strings
    are hashed or compared, only the distinct series' keys are sorted. One stable sort by
    series number keeps each series' rows in arrival order, which is time order whenever
    the rows arrived sorted by time (a package's or a journal's always do); otherwise one
    stable (series, time) sort puts them right. Each series is then a slice of two
    read-only arrays: no per-series filtering, no copies.
    """
    metric, metrics = codes(samples.column("metric"))
    entity, entities = codes(samples.column("entity"))
    label_set, label_sets = label_set_codes(samples.column("labels"))
    n_sets = len(label_sets)
    inner = np.multiply(entity, n_sets, dtype=np.int64) + label_set
    inner_space = len(entities) * n_sets
    inner_present = None
    if len(metrics) * inner_space > ts_raw.shape[0]:
        # Many entities and label sets (GPUs, links, processes): number the (entity, label
        # set) pairs that occur first, so the table below stays no larger than the rows.
        inner_present, inner = dense_renumber(inner, inner_space)
        inner_space = inner_present.shape[0]
    key = np.multiply(metric, inner_space, dtype=np.int64) + inner
    space = len(metrics) * inner_space
    dense = space <= DENSE_LIMIT
    if dense:
        rows_per_key = np.bincount(key, minlength=space)
        present = np.flatnonzero(rows_per_key)
    else:
        present, inverse = np.unique(key, return_inverse=True)
    of_metric, of_inner = np.divmod(present, inner_space)
    if inner_present is not None:
        of_inner = inner_present[of_inner]
    of_entity, of_set = np.divmod(of_inner, n_sets)
    # Series order: metric, entity, then the label set's k=v text; each list of distinct
    # names is sorted once and the series by those ranks.
    order_of_keys = np.lexsort((
        _ranks(label_sets, key=lambda s: (label_text(s), s))[of_set],
        _ranks(entities)[of_entity], _ranks(metrics)[of_metric]))
    n_series = present.shape[0]
    # Each row's series number in that order (16 bits when they fit: a radix sort below).
    number_type = np.uint16 if n_series <= 1 << 16 else np.int64
    rank = np.empty(n_series, number_type)
    rank[order_of_keys] = np.arange(n_series, dtype=number_type)
    if dense:
        table = np.zeros(space, number_type)
        table[present] = rank
        row_series = table[key]
        counts = rows_per_key[present][order_of_keys]
    else:
        row_series = rank[inverse.reshape(-1)]
        counts = np.bincount(row_series, minlength=n_series)
    order = np.argsort(row_series, kind="stable")  # radix sort for 16-bit numbers
    ts = ts_raw[order]
    starts = np.zeros(n_series + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    raw_steps = np.diff(ts_raw)
    in_order = not raw_steps.shape[0] or raw_steps.min() >= 0
    if not in_order:
        # Rows out of time order overall; each series may still be in order.
        steps = np.diff(ts)
        steps[starts[1:-1] - 1] = 0  # a series boundary is not a step back in time
        if steps.shape[0] and steps.min() < 0:
            order = np.lexsort((ts_raw, row_series))
            ts = ts_raw[order]
    values = _numpy(samples.column("value")).astype(np.float64, copy=False)[order]
    ts.flags.writeable = False
    values.flags.writeable = False
    grid = _grid(ts_raw, raw_steps if in_order else None)
    out: dict[SeriesKey, Series] = {}
    bounds = starts.tolist()
    for i, (m, e, s) in enumerate(zip(of_metric[order_of_keys].tolist(),
                                      of_entity[order_of_keys].tolist(),
                                      of_set[order_of_keys].tolist(), strict=True)):
        name, ent, labels = metrics[m], entities[e], label_sets[s]
        out[(name, ent, labels)] = Series(name, ent, labels, ts[bounds[i]:bounds[i + 1]],
                                          values[bounds[i]:bounds[i + 1]])
    return out, grid, (values, starts)


def _ranks(items: Sequence[Any], key: Callable[[Any], Any] | None = None) -> np.ndarray:
    """Each item's position in the sorted order of ``items``."""
    order = sorted(range(len(items)), key=(lambda i: key(items[i])) if key else items.__getitem__)
    rank = np.empty(len(items), np.int64)
    rank[order] = np.arange(len(items), dtype=np.int64)
    return rank


def _grid(ts: np.ndarray, steps: np.ndarray | None) -> np.ndarray:
    """Distinct sample times, ascending: without a sort when they arrived in order (then
    ``steps`` holds their differences)."""
    grid = np.unique(ts) if steps is None else ts[np.concatenate(([True], steps != 0))]
    grid.flags.writeable = False
    return grid


def _batch_spans(samples: pa.Table,
                 ts: np.ndarray) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Each batch's first and last sample time, ordered by (first, batch id).

    Rows of one batch arrive together, so the batch codes are cut into runs (a neighbour
    comparison) and only the runs are grouped, not every row.
    """
    if ts.shape[0] == 0:
        return (), np.zeros(0, np.int64), np.zeros(0, np.int64)
    batch, ids = codes(samples.column("batch_id"))
    starts = np.concatenate(([0], np.flatnonzero(np.diff(batch)) + 1))
    which = batch[starts]
    first = np.full(len(ids), np.iinfo(np.int64).max, np.int64)
    last = np.full(len(ids), np.iinfo(np.int64).min, np.int64)
    np.minimum.at(first, which, np.minimum.reduceat(ts, starts))
    np.maximum.at(last, which, np.maximum.reduceat(ts, starts))
    used = np.flatnonzero(first <= last)  # a dictionary may name batches no row is from
    pick = used[np.lexsort((_ranks(ids)[used], first[used]))]
    return tuple(ids[i] for i in pick.tolist()), first[pick], last[pick]
