"""Benchmark: the whole role chain on one host's 15-minute window at 1 s resolution.

Windows come from the scenario library (real profiles: every metric, process row and event a
collector of that host kind would send), cut to 15 minutes around the fault. Reported side
by side in one run: building the evidence view from batch frames, and the chain (all eight
roles) on a freshly built view, median and p90 over repeats, for a VM profile and a GPU
server. Wall time and this process's CPU time are both reported: on a shared machine the
wall time includes waiting for a core, the CPU time is what the work itself costs.

``--before TREE`` measures another checkout of the project (a ``git worktree``) the same
way, in a child process that imports that tree's code, alternating with this tree round by
round (``--rounds``), so both see the same load; each row says which tree it is.

    .venv/bin/python bench/chain.py [--repeats 15] [--before /tmp/chain-before --rounds 2]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CASES = (("01_cpu_saturation_runaway", 600), ("24_collective_straggler", 300))
WINDOW_S = 900


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure(repeats: int) -> list[dict[str, Any]]:
    """Every case's figures, in seconds, measured in this process (this tree's code)."""
    from sreagent.chain import Chain, EvidenceView
    from sreagent.scenarios import generate, load_scenario

    rows = []
    for scenario_id, start_s in CASES:
        scenario = generate(load_scenario(scenario_id))
        first = scenario.frames[0].header.sent_at_ns
        lo = first + start_s * 10**9
        hi = lo + (WINDOW_S - 1) * 10**9
        frames = [f for f in scenario.frames if lo <= f.header.sent_at_ns <= hi]
        build, build_cpu, chain_t, chain_cpu = [], [], [], []
        view = None
        for _ in range(repeats):
            view, wall, cpu = _timed(functools.partial(EvidenceView.from_frames, frames))
            build.append(wall)
            build_cpu.append(cpu)
            _, wall, cpu = _timed(functools.partial(Chain().run, view))
            chain_t.append(wall)
            chain_cpu.append(cpu)
        assert view is not None
        rows.append({"window": scenario_id, "series": len(view.series),
                     "samples": view.sample_count, "build": build, "build_cpu": build_cpu,
                     "chain": chain_t, "chain_cpu": chain_cpu})
    return rows


def _child(tree: Path, repeats: int) -> list[dict[str, Any]]:
    """:func:`measure` run by ``tree``'s code in a child process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--json",
                           "--repeats", str(repeats)], env=env, cwd=tree, check=True,
                          capture_output=True, text=True)
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def _ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1e3:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--before", type=Path, help="another tree to measure alongside")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the raw figures")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.repeats)))
        return
    here = Path(__file__).resolve().parent.parent
    trees = [("before", args.before), ("after", here)] if args.before else [("", here)]
    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)
    print("| tree | window | series | samples | view build median (CPU) | chain median (CPU) "
          "| chain best CPU | chain p90 |")
    print("|---|---|---|---|---|---|---|---|")
    for _ in range(args.rounds):
        for label, tree in trees:
            for r in _child(tree, args.repeats):
                print(f"| {label} | {r['window']} ({WINDOW_S} s) | {r['series']} | "
                      f"{r['samples']} | {_ms(r['build'])} ({_ms(r['build_cpu'])}) | "
                      f"{_ms(r['chain'])} ({_ms(r['chain_cpu'])}) | "
                      f"{min(r['chain_cpu']) * 1e3:.1f} ms | "
                      f"{_pct(r['chain'], 0.9) * 1e3:.1f} ms |", flush=True)
    print(f"load average at end: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
