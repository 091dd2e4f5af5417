"""The evidence view: the telemetry window a role reads, as immutable numpy series.

Roles never touch files, sockets or the collector. They read an :class:`EvidenceView`, built
once from batch frames or from an evidence package's tables (the same tables, so a replay
reads exactly what the live run read). Every series is a pair of sorted numpy arrays; the view
also keeps which batch each row came from, so an artifact's evidence reference can name the
batches that hold its raw rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from sreagent.errors import BadInput
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
        samples = _concat([_tag(f, f.samples) for f in frames])
        processes = _concat([_tag(f, f.processes) for f in frames])
        events = _concat([_tag(f, f.events) for f in frames])
        last = max(frames, key=lambda f: (f.header.sent_at_ns, f.header.seq))
        inventory = next(
            (f.header.inventory for f in sorted(frames, key=lambda f: -f.header.seq)
             if f.header.inventory is not None), None)
        modes: dict[str, str] = {c.source: c.mode for c in last.header.capabilities}
        return cls._build(host, samples, processes, events, inventory, modes, start_ns, end_ns)

    @classmethod
    def from_tables(cls, tables: dict[str, pa.Table], *, host: str | None = None,
                    start_ns: int | None = None, end_ns: int | None = None) -> EvidenceView:
        """Build the view of an evidence package's or the journal's tables."""
        for name in ("samples", "processes", "events"):
            if name not in tables:
                raise BadInput("missing from the telemetry tables", field=name)
        hosts = sorted(set(tables["samples"].column("host").to_pylist()))
        host = _pick_host(hosts, host)

        def only(t: pa.Table) -> pa.Table:
            return t.filter(pc.equal(t.column("host"), host)) if t.num_rows else t

        inventory = None
        modes: dict[str, str] = {}
        batches = tables.get("batches")
        if batches is not None and batches.num_rows:
            rows = sorted(only(batches).to_pylist(), key=lambda r: (r["sent_at_ns"], r["seq"]))
            for row in rows:
                if row["inventory"] is not None:
                    inventory = Inventory.model_validate(row["inventory"])
            if rows:
                modes = {c["source"]: c["mode"] for c in rows[-1]["capabilities"]}
        return cls._build(host, only(tables["samples"]), only(tables["processes"]),
                          only(tables["events"]), inventory, modes, start_ns, end_ns)

    @classmethod
    def _build(cls, host: str, samples: pa.Table, processes: pa.Table, events: pa.Table,
               inventory: Inventory | None, modes: dict[str, str],
               start_ns: int | None, end_ns: int | None) -> EvidenceView:
        if samples.num_rows == 0:
            raise BadInput(f"host {host!r} has no samples in this window", field="samples")
        ts_all = samples.column("ts_ns").to_numpy()
        lo = int(ts_all.min()) if start_ns is None else start_ns
        hi = int(ts_all.max()) if end_ns is None else end_ns
        if hi < lo:
            raise BadInput("the window ends before it starts", field="end_ns")
        if start_ns is not None or end_ns is not None:
            mask = pc.and_(pc.greater_equal(samples.column("ts_ns"), lo),
                           pc.less_equal(samples.column("ts_ns"), hi))
            samples = samples.filter(mask)
            if events.num_rows:
                events = events.filter(pc.and_(pc.greater_equal(events.column("ts_ns"), lo),
                                               pc.less_equal(events.column("ts_ns"), hi)))
            if processes.num_rows:
                processes = processes.filter(
                    pc.and_(pc.greater_equal(processes.column("ts_ns"), lo),
                            pc.less_equal(processes.column("ts_ns"), hi)))
        series = _series_of(samples)
        # Batches: their first and last sample time, for evidence references.
        bdf = pl.from_arrow(samples.select(["batch_id", "ts_ns"]))
        assert isinstance(bdf, pl.DataFrame)
        spans = (bdf.group_by("batch_id").agg(pl.col("ts_ns").min().alias("first"),
                                              pl.col("ts_ns").max().alias("last"))
                 .sort(["first", "batch_id"]))
        grid = np.unique(samples.column("ts_ns").to_numpy())
        resolution = float(np.median(np.diff(grid)) / 1e9) if grid.shape[0] > 1 else 1.0
        event_rows = tuple(
            EventRow(ts_ns=r["ts_ns"], kind=r["kind"], entity=r["entity"], source=r["source"],
                     severity=r["severity"], message=r["message"],
                     attributes=dict(r["attributes"] or []), batch_id=r["batch_id"])
            for r in sorted(events.to_pylist(), key=lambda r: (r["ts_ns"], r["kind"],
                                                                 r["entity"]))
        ) if events.num_rows else ()
        procs = pl.from_arrow(processes) if processes.num_rows else pl.DataFrame()
        assert isinstance(procs, pl.DataFrame)
        by_metric: dict[str, list[SeriesKey]] = {}
        for key in series:
            by_metric.setdefault(key[0], []).append(key)
        return cls(
            host=host, start_ns=lo, end_ns=hi, resolution_s=max(resolution, 1e-3),
            series=series, events=event_rows, processes=procs, inventory=inventory,
            source_modes=modes, batch_ids=tuple(spans["batch_id"].to_list()),
            batch_first_ns=spans["first"].to_numpy(), batch_last_ns=spans["last"].to_numpy(),
            expected_interval_s=max(resolution, 1e-3), grid=grid, _by_metric=by_metric,
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
        return sum(len(s) for s in self.series.values())

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


def _pick_host(hosts: list[str], host: str | None) -> str:
    if host is None:
        if len(hosts) != 1:
            raise BadInput(f"the telemetry holds {len(hosts)} hosts ({', '.join(hosts[:5])}); "
                           "name one", field="host")
        return hosts[0]
    if host not in hosts:
        raise BadInput(f"host {host!r} is not in the telemetry", field="host")
    return host


def _tag(frame: BatchFrame, table: pa.Table) -> pa.Table:
    n = table.num_rows
    return table.add_column(0, "host", pa.array([frame.header.host] * n, pa.string())) \
        .add_column(0, "batch_id", pa.array([frame.batch_id] * n, pa.string()))


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _label_keys(labels: Any) -> pa.Array:
    """One ``k=v,k=v`` string per row of a map column (keys arrive sorted from the contract)."""
    labels = labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels
    if len(labels.keys) == 0:
        return pa.array([""] * len(labels), pa.string())
    pairs = pc.binary_join_element_wise(labels.keys, labels.items, "=")
    as_list = pa.ListArray.from_arrays(labels.offsets, pairs)
    return pc.fill_null(pc.binary_join(as_list, "\x1f"), "")


def _series_of(samples: pa.Table) -> dict[SeriesKey, Series]:
    frame = pl.DataFrame({
        "metric": pl.from_arrow(samples.column("metric")),
        "entity": pl.from_arrow(samples.column("entity")),
        "lkey": pl.from_arrow(_label_keys(samples.column("labels"))),
        "ts": pl.from_arrow(samples.column("ts_ns")),
        "value": pl.from_arrow(samples.column("value")),
    }).sort(["metric", "entity", "lkey", "ts"])
    ts = frame["ts"].to_numpy()
    values = frame["value"].to_numpy().astype(np.float64, copy=False)
    groups = (frame.with_row_index("row")
              .group_by(["metric", "entity", "lkey"], maintain_order=True)
              .agg(pl.col("row").first().alias("start"), pl.len().alias("n")))
    out: dict[SeriesKey, Series] = {}
    for metric, entity_name, lkey, start, n in groups.iter_rows():
        labels: LabelKey = tuple(
            tuple(p.split("=", 1)) for p in lkey.split("\x1f")
        ) if lkey else ()
        sl = slice(start, start + n)
        out[(metric, entity_name, labels)] = Series(metric, entity_name, labels, ts[sl],
                                                    values[sl])
    return out
