"""Benchmark: the whole role chain on one host's 15-minute window at 1 s resolution.

Windows come from the scenario library (real profiles: every metric, process row and event a
collector of that host kind would send), cut to 15 minutes around the fault. Reported side
by side in one run: building the evidence view from batch frames, and the chain (all eight
roles) on a freshly built view, median and p90 over repeats, for a VM profile and a GPU
server. Wall time and this process's CPU time are both reported: on a shared machine the
wall time includes waiting for a core, the CPU time is what the work itself costs.

    .venv/bin/python bench/chain.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

from sreagent.chain import Chain, EvidenceView
from sreagent.scenarios import generate, load_scenario

CASES = (("01_cpu_saturation_runaway", 600), ("24_collective_straggler", 300))
WINDOW_S = 900


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print("| window | series | samples | view build median (CPU) | chain median (CPU) "
          "| chain p90 |")
    print("|---|---|---|---|---|---|")
    for scenario_id, start_s in CASES:
        scenario = generate(load_scenario(scenario_id))
        first = scenario.frames[0].header.sent_at_ns
        lo = first + start_s * 10**9
        hi = lo + (WINDOW_S - 1) * 10**9
        frames = [f for f in scenario.frames if lo <= f.header.sent_at_ns <= hi]
        build, build_cpu, chain_t, chain_cpu = [], [], [], []
        view = None
        for _ in range(args.repeats):
            view, wall, cpu = _timed(functools.partial(EvidenceView.from_frames, frames))
            build.append(wall)
            build_cpu.append(cpu)
            _, wall, cpu = _timed(functools.partial(Chain().run, view))
            chain_t.append(wall)
            chain_cpu.append(cpu)
        assert view is not None

        def ms(xs: list[float]) -> str:
            return f"{statistics.median(xs) * 1e3:.1f} ms"

        print(f"| {scenario_id} ({WINDOW_S} s) | {len(view.series)} | {view.sample_count} | "
              f"{ms(build)} ({ms(build_cpu)}) | {ms(chain_t)} ({ms(chain_cpu)}) | "
              f"{_pct(chain_t, 0.9) * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
