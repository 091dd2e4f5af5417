"""Benchmark: the whole role chain on one host's 15-minute window at 1 s resolution.

Windows come from the scenario library (real profiles: every metric, process row and event a
collector of that host kind would send), cut to 15 minutes around the fault. Reported side
by side in one run: building the evidence view from batch frames, and the chain (all eight
roles) on a built view, median and p90 over repeats, for a VM profile and a GPU server.

    .venv/bin/python bench/chain.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

from sreagent.chain import Chain, EvidenceView
from sreagent.scenarios import generate, load_scenario

CASES = (("01_cpu_saturation_runaway", 600), ("24_collective_straggler", 300))
WINDOW_S = 900


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print("| window | series | samples | view build median | chain median | chain p90 |")
    print("|---|---|---|---|---|---|")
    for scenario_id, start_s in CASES:
        scenario = generate(load_scenario(scenario_id))
        first = scenario.frames[0].header.sent_at_ns
        lo = first + start_s * 10**9
        hi = lo + (WINDOW_S - 1) * 10**9
        frames = [f for f in scenario.frames if lo <= f.header.sent_at_ns <= hi]
        build, chain_t = [], []
        view = None
        for _ in range(args.repeats):
            t = time.perf_counter()
            view = EvidenceView.from_frames(frames)
            build.append(time.perf_counter() - t)
            t = time.perf_counter()
            Chain().run(view)
            chain_t.append(time.perf_counter() - t)
        assert view is not None
        print(f"| {scenario_id} ({WINDOW_S} s) | {len(view.series)} | {view.sample_count} | "
              f"{statistics.median(build) * 1e3:.1f} ms | "
              f"{statistics.median(chain_t) * 1e3:.1f} ms | {_pct(chain_t, 0.9) * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
