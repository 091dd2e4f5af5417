"""Replay speed: telemetry-seconds replayed per wall-second, and replay cost vs pure load.

One host at 1 s resolution over one hour (scenario 01 stretched to 3600 s) is recorded once,
then, side by side and repeated: reading the package's Parquet files (pure load: plain
``pq.read_table`` of the six tables) and a full replay (verify, rebuild the evidence view,
run the chain, compare). The same pair is measured over the whole replays/ corpus. Wall
time and the process's CPU time (all its threads) are both reported: on a shared machine
the wall time includes waiting for a core. Figures go to docs/benchmarks.md ("Replay");
``--no-write`` only prints them.

``--before DIR`` also measures the code of another checkout (an older commit exported with
``git archive``) in the same run: each round runs one child process per tree, alternating,
so both see the same machine; the table shows them side by side.

Run: .venv/bin/python bench/replay.py [--repeat 3] [--before DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _tree_argument() -> Path:
    """``--tree`` is read before sreagent is imported: the code under test comes from it."""
    for i, arg in enumerate(sys.argv):
        if arg == "--tree" and i + 1 < len(sys.argv):
            return Path(sys.argv[i + 1]).resolve()
    return REPO


TREE = _tree_argument()
sys.path.insert(0, str(TREE))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import pyarrow.parquet as pq  # noqa: E402
from _sections import write_section  # noqa: E402

Cost = tuple[float, float]
"""(wall seconds, CPU seconds)."""

TABLES = ("batches", "samples", "processes", "events", "artifacts", "activities")


def pure_load(package: Path) -> Cost:
    wall, cpu = time.perf_counter(), time.process_time()
    for name in TABLES:
        pq.read_table(package / f"{name}.parquet")
    return time.perf_counter() - wall, time.process_time() - cpu


def replay(package: Path, diverged: list[str]) -> Cost:
    from sreagent.replay import Replayer

    wall, cpu = time.perf_counter(), time.process_time()
    result = Replayer().replay(package)
    cost = time.perf_counter() - wall, time.process_time() - cpu
    if not result.identical:
        diverged.append(package.name)  # timed all the same; named under the table
    return cost


def record_hour(path: Path) -> None:
    from sreagent.replay._lab import record_scenario
    from sreagent.scenarios import load_scenario

    definition = load_scenario("01")
    definition = definition.model_validate({**definition.model_dump(), "duration_s": 3600,
                                            "faults": [{**definition.faults[0].model_dump(),
                                                        "onset_s": 2400}]})
    record_scenario(definition, path)


def measure(hour: Path) -> dict[str, Any]:
    """One round in this process: the hour (pure load, replay) and the corpus (each)."""
    diverged: list[str] = []
    replay(hour, diverged)  # imports and caches warmed once, as in a long-lived process
    corpus = sorted(p.parent for p in (REPO / "replays").glob("*/manifest.json"))
    hour_load, hour_replay = pure_load(hour), replay(hour, diverged)
    corpus_load = [pure_load(p) for p in corpus]
    corpus_replay = [replay(p, diverged) for p in corpus]
    return {
        "hour_load": hour_load, "hour_replay": hour_replay,
        "corpus_load": [sum(c[0] for c in corpus_load), sum(c[1] for c in corpus_load)],
        "corpus_replay": [sum(c[0] for c in corpus_replay), sum(c[1] for c in corpus_replay)],
        "packages": len(corpus), "diverged": sorted(set(diverged) - {hour.name}),
        "hour_diverged": hour.name in diverged,
    }


def _median(rounds: list[dict[str, Any]], key: str) -> Cost:
    return (statistics.median(r[key][0] for r in rounds),
            statistics.median(r[key][1] for r in rounds))


def _row(what: str, load: Cost, full: Cost, seconds: int | None) -> str:
    speed = f"{seconds / full[0]:,.0f}x ({seconds / full[1]:,.0f}x)" if seconds else ""
    return (f"| {what} | {load[0]:.3f} s ({load[1]:.3f} s) | {full[0]:.3f} s "
            f"({full[1]:.3f} s) | {full[0] / load[0]:.1f}x ({full[1] / load[1]:.1f}x) "
            f"| {speed} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not update the docs")
    parser.add_argument("--before", type=Path, help="another checkout to measure alongside")
    parser.add_argument("--tree", type=Path, default=REPO, help=argparse.SUPPRESS)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one round for the parent, in the code of --tree
        print(json.dumps(measure(args.child)))
        return
    trees = {"after": REPO, **({"before": args.before.resolve()} if args.before else {})}
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        hour = Path(tmp) / "hour"
        record_hour(hour)
        for _ in range(args.repeat):
            for name, tree in sorted(trees.items()):  # "after", then "before"
                out = subprocess.run(
                    [sys.executable, __file__, "--tree", str(tree), "--child", str(hour)],
                    check=True, capture_output=True, text=True, cwd=tree,
                    env={**os.environ, "PYTHONPATH": str(tree)}).stdout
                rounds[name].append(json.loads(out.splitlines()[-1]))
                loads.append(os.getloadavg()[0])
    tables = []
    for name in ("before", "after"):
        if name not in rounds:
            continue
        got = rounds[name]
        label = f"{name}: " if len(trees) > 1 else ""
        tables.append(_row(f"{label}one host, 1 s, one hour (3600 batches)",
                           _median(got, "hour_load"), _median(got, "hour_replay"), 3600))
        tables.append(_row(f"{label}replays/ corpus ({got[0]['packages']} packages)",
                           _median(got, "corpus_load"), _median(got, "corpus_replay"), None))
    diverged = sorted({p for r in rounds["after"] for p in r["diverged"]})
    if any(r["hour_diverged"] for r in rounds["after"]):
        raise SystemExit("the hour package did not replay identically")
    rows = "\n".join(tables)
    body = f"""
Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, 2 cores, load average {min(loads):.1f} to
{max(loads):.1f} (shared machine), median of {args.repeat} rounds (one child process per
tree and round, alternating); wall time, CPU time in brackets.

| what | pure load of the Parquet files | full replay | replay / load | telemetry-s per wall-s (per CPU-s) |
|---|---|---|---|---|
{rows}

Targets: at least 5,000x real time for the hour, and a replay costing at most 3x the pure load.
""" + (f"""
Diverged from their goldens (timed all the same): {", ".join(diverged)}.
""" if diverged else "")
    print(body)
    if not args.no_write:
        write_section("Replay (bench/replay.py)", body)


if __name__ == "__main__":
    main()
