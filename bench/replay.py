"""Replay speed: telemetry-seconds replayed per wall-second, and replay cost vs pure load.

One host at 1 s resolution over one hour (scenario 01 stretched to 3600 s) is recorded once,
then, side by side in one run and repeated: reading the package's Parquet files (pure load)
and a full replay (verify, rebuild the evidence view, run the chain, compare). The same pair is
measured over the whole replays/ corpus. Wall time and this process's CPU time (all its
threads) are both reported: on a shared machine the wall time includes waiting for a core.
Figures go to docs/benchmarks.md ("Replay"); ``--no-write`` only prints them.

Run: .venv/bin/python bench/replay.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sections import write_section

from sreagent.replay import Replayer
from sreagent.replay._lab import record_scenario
from sreagent.scenarios import load_scenario

REPO = Path(__file__).resolve().parents[1]


Cost = tuple[float, float]
"""(wall seconds, CPU seconds)."""


def pure_load(package: Path) -> Cost:
    wall, cpu = time.perf_counter(), time.process_time()
    for name in ("batches", "samples", "processes", "events", "artifacts", "activities"):
        pq.read_table(package / f"{name}.parquet")
    return time.perf_counter() - wall, time.process_time() - cpu


DIVERGED: list[str] = []


def replay(package: Path, *, must_match: bool = True) -> Cost:
    wall, cpu = time.perf_counter(), time.process_time()
    result = Replayer().replay(package)
    cost = time.perf_counter() - wall, time.process_time() - cpu
    if not result.identical:
        if must_match:
            raise SystemExit(f"{package} diverged: {result.first_divergence}")
        DIVERGED.append(package.name)  # timed all the same; named under the table
    return cost


def _median(costs: list[Cost]) -> Cost:
    return statistics.median(c[0] for c in costs), statistics.median(c[1] for c in costs)


def _total(costs: list[Cost]) -> Cost:
    return sum(c[0] for c in costs), sum(c[1] for c in costs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not update the docs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hour = Path(tmp) / "hour"
        definition = load_scenario("01")
        definition = definition.model_validate({**definition.model_dump(), "duration_s": 3600,
                                                "faults": [{**definition.faults[0].model_dump(),
                                                            "onset_s": 2400}]})
        record_scenario(definition, hour)
        replay(hour)  # warm imports and caches once
        loads, replays = [], []
        for _ in range(args.repeat):
            loads.append(pure_load(hour))
            replays.append(replay(hour))
        load, hour_replay = _median(loads), _median(replays)
    corpus = sorted(p.parent for p in (REPO / "replays").glob("*/manifest.json"))
    corpus_load = _total([pure_load(p) for p in corpus])
    corpus_replay = _total([replay(p, must_match=False) for p in corpus])
    load_avg = os.getloadavg()[0]

    def row(what: str, load: Cost, full: Cost, seconds: int | None) -> str:
        speed = (f"{seconds / full[0]:,.0f}x ({seconds / full[1]:,.0f}x)" if seconds else "")
        return (f"| {what} | {load[0]:.3f} s ({load[1]:.3f} s) | {full[0]:.3f} s "
                f"({full[1]:.3f} s) | {full[0] / load[0]:.1f}x ({full[1] / load[1]:.1f}x) "
                f"| {speed} |")

    body = f"""
Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, 2 cores, load average {load_avg:.1f} (shared
machine), median of {args.repeat}; wall time, CPU time in brackets.

| what | pure load of the Parquet files | full replay | replay / load | telemetry-s per wall-s (per CPU-s) |
|---|---|---|---|---|
{row("one host, 1 s, one hour (3600 batches)", load, hour_replay, 3600)}
{row(f"replays/ corpus ({len(corpus)} packages)", corpus_load, corpus_replay, None)}

Targets: at least 5,000x real time for the hour, and a replay costing at most 3x the pure load.
""" + (f"""
Diverged from their goldens (the role logic changed since they were recorded; the replay was
timed all the same): {", ".join(DIVERGED)}.
""" if DIVERGED else "")
    print(body)
    if not args.no_write:
        write_section("Replay (bench/replay.py)", body)


if __name__ == "__main__":
    main()
