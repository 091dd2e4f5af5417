"""Opt-in memory profiling of a running controller (``debug.memory_profile_dir``).

Off by default. When a folder is set, the controller writes there, while it runs:

* ``samples.jsonl``: one line per ``debug.memory_sample_interval_s`` with the process's RSS
  and how much of it is anonymous memory or mapped files (``/proc/self/status``), the bytes
  Arrow's memory pool holds (``pyarrow.total_allocated_bytes``; tracemalloc does not see them), the bytes tracemalloc traces, glibc's heap figures
  (``mallinfo2``: in use, free inside the heap, mmapped) and the thread count;
* ``snapshot-NN.json`` every ``debug.memory_snapshot_interval_s`` (NN counts from 1): the
  Python allocation sites that grew most since snapshot ``debug.memory_baseline_snapshot``
  (tracemalloc, ``compare_to`` by line), so a steady growth shows as the same site growing
  from snapshot to snapshot;
* ``journal-activity.json``: the journal's Parquet flushes and compactions with their wall
  clock start, duration and rows (rewritten with every snapshot and at stop), so RSS steps in
  ``samples.jsonl`` can be matched to them.

Why a setting and not always on: tracemalloc slows every Python allocation (about 1.5-2x on
allocation-heavy code) and a snapshot costs memory of its own while it is taken.
``bench/ingest_soak.py`` turns it on and reads the files.
"""

from __future__ import annotations

import ctypes
import json
import logging
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from sreagent.atomic import atomic_write_bytes
from sreagent.controller.settings import DebugSettings

log = logging.getLogger(__name__)


def resident_from_status(status: bytes) -> dict[str, int]:
    """Resident bytes from the text of ``/proc/<pid>/status``: ``rss`` in all, ``anon``
    (heaps, Arrow's pool, stacks) and ``file`` (mapped libraries and files)."""
    wanted = {b"VmRSS:": "rss", b"RssAnon:": "anon", b"RssFile:": "file"}
    found: dict[str, int] = {}
    for line in status.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] in wanted and fields[2] == b"kB":
            found[wanted[fields[0]]] = int(fields[1]) * 1024
    missing = sorted(set(wanted.values()) - set(found))
    if missing:
        raise ValueError(f"no {', '.join(missing)} in this /proc/<pid>/status text")
    return found


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _load_mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        libc = ctypes.CDLL(None)
        function = libc.mallinfo2
    except (OSError, AttributeError):  # not glibc >= 2.33
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    return function


_MALLINFO2 = _load_mallinfo2()


def malloc_figures() -> dict[str, int]:
    """glibc's heap figures over all arenas: bytes in use, bytes free inside the heaps (held,
    not returned to the kernel), bytes in mmapped chunks. Empty without glibc."""
    if _MALLINFO2 is None:
        return {}
    info = _MALLINFO2()
    return {"in_use": info.uordblks, "free_held": info.fordblks, "heap": info.arena,
            "mmapped": info.hblkhd}


class MemoryProfile:
    """The sampling thread; :meth:`stop` takes a last snapshot and writes the activity."""

    def __init__(self, directory: Path, *, sample_interval_s: float = 1.0,
                 snapshot_interval_s: float = 60.0, baseline_snapshot: int = 2, top: int = 30,
                 activity: Callable[[], list[dict[str, Any]]] | None = None,
                 trace: bool = True):
        self.directory = Path(directory)
        self.sample_interval_s = sample_interval_s
        self.snapshot_interval_s = snapshot_interval_s
        self.baseline_snapshot = baseline_snapshot
        self.top = top
        self._activity = activity
        self.trace = trace
        self._baseline: tracemalloc.Snapshot | None = None
        self.snapshots = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-profile", daemon=True)
        self._started_tracing = False

    def start(self) -> MemoryProfile:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.trace and not tracemalloc.is_tracing():
            tracemalloc.start(1)
            self._started_tracing = True
        self._thread.start()
        log.warning("memory profiling on (tracemalloc: %s): writing to %s", self.trace,
                    self.directory)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self._write_activity()
        if self._started_tracing:
            tracemalloc.stop()

    def _loop(self) -> None:
        started = time.monotonic()
        next_snapshot = started + self.snapshot_interval_s
        with open(self.directory / "samples.jsonl", "a", buffering=1) as out:
            while not self._stop.wait(self.sample_interval_s):
                try:
                    out.write(json.dumps(self.sample(time.monotonic() - started)) + "\n")
                    if time.monotonic() >= next_snapshot:
                        next_snapshot += self.snapshot_interval_s
                        if self.trace:
                            self.snapshot()
                        else:
                            self._write_activity()
                except Exception:  # a debugging aid must never take the controller down
                    log.exception("memory profile sample failed")

    def sample(self, elapsed_s: float) -> dict[str, Any]:
        traced, traced_peak = tracemalloc.get_traced_memory()
        return {"t": round(elapsed_s, 2), "wall": round(time.time(), 3),
                **resident_from_status(Path("/proc/self/status").read_bytes()),
                "arrow_allocated": pa.total_allocated_bytes(), "traced": traced,
                "traced_peak": traced_peak, "malloc": malloc_figures(),
                "threads": threading.active_count()}

    def snapshot(self) -> Path:
        """Take snapshot NN; write the top growing sites since the baseline snapshot."""
        self.snapshots += 1
        number = self.snapshots
        current = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        traced = sum(stat.size for stat in current.statistics("filename"))
        if number == self.baseline_snapshot:
            self._baseline = current
        growth: list[dict[str, Any]] = []
        if self._baseline is not None and number > self.baseline_snapshot:
            diff = current.compare_to(self._baseline, "lineno")
            diff.sort(key=lambda d: d.size_diff, reverse=True)
            growth = [{"site": str(d.traceback[0]), "size_diff": d.size_diff,
                       "count_diff": d.count_diff, "size": d.size} for d in diff[: self.top]]
        del current
        path = self.directory / f"snapshot-{number:02d}.json"
        body = {"snapshot": number, "wall": round(time.time(), 3), "traced_bytes": traced,
                "baseline": self.baseline_snapshot, "top_growth": growth}
        atomic_write_bytes(path, json.dumps(body, indent=1).encode())
        self._write_activity()
        return path

    def _write_activity(self) -> None:
        if self._activity is None:
            return
        atomic_write_bytes(self.directory / "journal-activity.json",
                           json.dumps(self._activity(), indent=1).encode())


def start_memory_profile(debug: DebugSettings) -> MemoryProfile | None:
    """Start profiling as the ``debug`` settings say; None when ``memory_profile_dir`` is
    unset (the default)."""
    if debug.memory_profile_dir is None:
        return None
    from sreagent.controller.journal import journal_activity

    return MemoryProfile(debug.memory_profile_dir,
                         sample_interval_s=debug.memory_sample_interval_s,
                         snapshot_interval_s=debug.memory_snapshot_interval_s,
                         baseline_snapshot=debug.memory_baseline_snapshot,
                         activity=journal_activity,
                         trace=debug.memory_tracemalloc).start()
