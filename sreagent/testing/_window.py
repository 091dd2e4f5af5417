"""Build small telemetry windows in tests: real batch frames, not mocks.

    w = WindowBuilder(seconds=600, seed=1, cpu_count=4)
    w.gauge("cpu_utilisation_ratio", base=0.3, noise=0.02)
    w.gauge("process_cpu_ratio", "process/4242", base=0.1, noise=0.01)
    w.ramp("cpu_utilisation_ratio", start_s=400, to=0.99)
    view = w.view()

Values are floats per second (or per ``resolution_s``), noise is drawn from a seeded numpy
generator, and the frames are :class:`~sreagent.telemetry.BatchFrame` objects exactly like the
controller's, one batch per ``batch_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from sreagent.runtime._view import EvidenceView
from sreagent.telemetry import (
    EVENTS_SCHEMA,
    PROCESSES_SCHEMA,
    SAMPLES_SCHEMA,
    BatchFrame,
    BatchHeader,
    Inventory,
    SourceCapability,
)
from sreagent.telemetry.batch import DiskInfo, GpuInfo, NicInfo

START_NS = 1_767_225_600 * 10**9
"""2026-01-01T00:00:00Z: a fixed start keeps test artifacts stable."""

Key = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass
class WindowBuilder:
    seconds: int = 900
    resolution_s: int = 1
    seed: int = 0
    host: str = "test-host"
    cpu_count: int = 4
    disks: tuple[tuple[str, str], ...] = (("nvme0n1", "nvme"),)
    nics: tuple[str, ...] = ("eth0",)
    gpus: int = 0
    batch_seconds: int = 10
    start_ns: int = START_NS
    _series: dict[Key, np.ndarray] = field(default_factory=dict, init=False)
    _events: list[dict[str, object]] = field(default_factory=list, init=False)
    _rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @property
    def n(self) -> int:
        return self.seconds // self.resolution_s

    @property
    def ts(self) -> np.ndarray:
        return self.start_ns + np.arange(self.n, dtype=np.int64) * self.resolution_s * 10**9

    def _key(self, metric: str, entity: str, labels: dict[str, str] | None) -> Key:
        return (metric, entity, tuple(sorted((labels or {}).items())))

    def gauge(self, metric: str, entity: str = "host", *, base: float, noise: float = 0.0,
              labels: dict[str, str] | None = None, lo: float | None = 0.0,
              hi: float | None = None) -> WindowBuilder:
        v = base + noise * self._rng.standard_normal(self.n)
        if lo is not None or hi is not None:
            v = np.clip(v, lo, hi)
        self._series[self._key(metric, entity, labels)] = v
        return self

    def counter(self, metric: str, entity: str = "host", *, rate: float = 0.0,
                labels: dict[str, str] | None = None, start: float = 0.0) -> WindowBuilder:
        self._series[self._key(metric, entity, labels)] = start + rate * np.arange(self.n) \
            * self.resolution_s
        return self

    def _at(self, s: float) -> int:
        return int(min(max(s / self.resolution_s, 0), self.n))

    def ramp(self, metric: str, entity: str = "host", *, start_s: float, to: float,
             ramp_s: float = 0.0, end_s: float | None = None, noise: float = 0.0,
             labels: dict[str, str] | None = None) -> WindowBuilder:
        """From ``start_s`` move linearly over ``ramp_s`` to ``to`` and stay until ``end_s``."""
        v = self._series[self._key(metric, entity, labels)]
        i0, i1 = self._at(start_s), self._at(end_s if end_s is not None else self.seconds)
        r = max(1, self._at(ramp_s))
        frac = np.minimum(1.0, (np.arange(i1 - i0) + 1) / r)
        v[i0:i1] = v[i0:i1] * (1 - frac) + to * frac + noise * self._rng.standard_normal(i1 - i0)
        return self

    def bump_counter(self, metric: str, entity: str = "host", *, at_s: float, by: float,
                     labels: dict[str, str] | None = None) -> WindowBuilder:
        v = self._series[self._key(metric, entity, labels)]
        v[self._at(at_s):] += by
        return self

    def event(self, at_s: float, kind: str, entity: str, *, severity: str = "error",
              source: str = "kmsg", message: str = "",
              attributes: dict[str, str] | None = None) -> WindowBuilder:
        self._events.append({"ts_ns": self.start_ns + int(at_s * 1e9), "kind": kind,
                             "entity": entity, "source": source, "severity": severity,
                             "message": message,
                             "attributes": sorted((attributes or {}).items())})
        return self

    def inventory(self) -> Inventory:
        return Inventory(
            cpu_model="test", cpu_count=self.cpu_count, memory_bytes=64 * 2**30,
            disks=[DiskInfo(name=d, kind=k, rotational=k == "hdd") for d, k in
                   self.disks],
            nics=[NicInfo(name=n, speed_mbps=10_000) for n in self.nics],
            gpus=[GpuInfo(index=i, model="H100", power_cap_watts=700.0)
                  for i in range(self.gpus)])

    def frames(self) -> list[BatchFrame]:
        ts = self.ts
        keys = sorted(self._series)
        per = max(1, self.batch_seconds // self.resolution_s)
        frames = []
        inventory = self.inventory()
        for seq, lo in enumerate(range(0, self.n, per), start=1):
            hi = min(self.n, lo + per)
            cols: dict[str, list[object]] = {"ts_ns": [], "metric": [], "entity": [],
                                             "labels": [], "value": []}
            for metric, ent, labels in keys:
                vals = self._series[(metric, ent, labels)][lo:hi]
                cols["ts_ns"].extend(ts[lo:hi].tolist())
                cols["metric"].extend([metric] * (hi - lo))
                cols["entity"].extend([ent] * (hi - lo))
                cols["labels"].extend([list(labels)] * (hi - lo))
                cols["value"].extend(np.round(vals, 9).tolist())
            t_lo, t_hi = int(ts[lo]), int(ts[hi - 1])
            events = [e for e in self._events if t_lo <= int(e["ts_ns"]) <= t_hi  # type: ignore[call-overload]
                      + (self.resolution_s * 10**9 - 1)]
            header = BatchHeader(
                schema_version="sreagent.batch/v1", collector_id="test-collector",
                host=self.host, producer_epoch="epoch-1", seq=seq, sent_at_ns=t_hi,
                capabilities=[SourceCapability(source="procfs", mode="fallback",
                                               reason="test window")],
                inventory=inventory)
            frames.append(BatchFrame(
                header=header, samples=pa.Table.from_pydict(cols, schema=SAMPLES_SCHEMA),
                processes=PROCESSES_SCHEMA.empty_table(),
                events=pa.Table.from_pylist(events, schema=EVENTS_SCHEMA) if events
                else EVENTS_SCHEMA.empty_table()))
        return frames

    def view(self) -> EvidenceView:
        return EvidenceView.from_frames(self.frames())
