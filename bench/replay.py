"""Replay speed: telemetry-seconds replayed per wall-second, and replay cost vs pure load.

One host at 1 s resolution over one hour (scenario 01 stretched to 3600 s) is recorded once,
then, side by side in one run and repeated: reading the package's Parquet files (pure load)
and a full replay (verify, rebuild the evidence view, run the chain, compare). The same pair is
measured over the whole replays/ corpus. Figures go to docs/benchmarks.md ("Replay").

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
from _sections import write_section  # noqa: E402

from sreagent.replay import Replayer  # noqa: E402
from sreagent.replay._lab import record_scenario  # noqa: E402
from sreagent.scenarios import load_scenario  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def pure_load(package: Path) -> float:
    start = time.perf_counter()
    for name in ("batches", "samples", "processes", "events", "artifacts", "activities"):
        pq.read_table(package / f"{name}.parquet")
    return time.perf_counter() - start


def replay(package: Path) -> float:
    start = time.perf_counter()
    result = Replayer().replay(package)
    elapsed = time.perf_counter() - start
    if not result.identical:
        raise SystemExit(f"{package} diverged: {result.first_divergence}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
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
        load_s, replay_s = statistics.median(loads), statistics.median(replays)
    corpus = sorted(p.parent for p in (REPO / "replays").glob("*/manifest.json"))
    corpus_load = sum(pure_load(p) for p in corpus)
    corpus_replay = sum(replay(p) for p in corpus)
    load_avg = os.getloadavg()[0]
    body = f"""
Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, 2 cores, load average {load_avg:.1f} (shared
machine), median of {args.repeat}.

| what | pure load of the Parquet files | full replay | replay / load | telemetry-s per wall-s |
|---|---|---|---|---|
| one host, 1 s, one hour (3600 batches) | {load_s:.3f} s | {replay_s:.3f} s | {replay_s / load_s:.1f}x | {3600 / replay_s:,.0f}x |
| replays/ corpus ({len(corpus)} packages) | {corpus_load:.3f} s | {corpus_replay:.3f} s | {corpus_replay / max(corpus_load, 1e-9):.1f}x | |

Targets: at least 5,000x real time for the hour, and a replay costing at most 3x the pure load.
"""
    print(body)
    write_section("Replay (bench/replay.py)", body)


if __name__ == "__main__":
    main()
