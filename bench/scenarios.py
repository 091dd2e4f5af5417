"""Scenario generation speed, side by side in one run.

Measures, on this machine, now (best and median of ``--repeat`` runs, wall and CPU time):

1. ``generate()`` for one host at 1 s resolution over one hour, for each built-in profile
   (the issue's target: one host, one hour, 1 s, under 1 s), on a control definition with the
   profile's benign bursts;
2. the naive alternative for comparison: building the same batches as validated pydantic
   ``Batch`` objects (one object per sample), timed on 120 batches and scaled to the hour;
3. ``write_generated()`` for the hour (batch digests, journal, evidence package);
4. the whole library: every scenario in ``fixtures/scenarios`` generated once.

Writes the figures to docs/benchmarks.md under "## Scenario generation (bench/scenarios.py)"
(replacing that section only) and prints them:

    .venv/bin/python bench/scenarios.py [--repeat 5] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sreagent.scenarios import (
    ScenarioDefinition,
    builtin_profile_names,
    generate,
    load_all,
    write_generated,
)
from sreagent.telemetry import Batch

REPO = Path(__file__).resolve().parent.parent
SECTION = "## Scenario generation (bench/scenarios.py)"
BURSTS = {
    "web-vm": [{"kind": "cron", "every_s": 300, "duration_s": 25},
               {"kind": "backup", "every_s": 600, "offset_s": 150, "duration_s": 90}],
    "k8s-node": [{"kind": "cron", "every_s": 300, "duration_s": 30},
                 {"kind": "backup", "every_s": 600, "offset_s": 240, "duration_s": 60}],
    "db-server": [{"kind": "backup", "every_s": 900, "offset_s": 300, "duration_s": 180}],
    "gpu-node-8x-h100": [{"kind": "checkpoint", "every_s": 480, "offset_s": 200,
                          "duration_s": 40}],
}


def hour(profile: str) -> ScenarioDefinition:
    return ScenarioDefinition.model_validate({
        "id": "90_bench_hour", "title": "bench", "profile": profile, "seed": 1,
        "start": "2026-03-02T14:00:00Z", "duration_s": 3600, "resolution_s": 1,
        "baseline": {"bursts": BURSTS[profile]}, "ground_truth": {"incident": False},
    })


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(best wall, median wall, median CPU) seconds."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    generate(hour("web-vm"))  # warm imports and caches
    rows = []
    for profile in builtin_profile_names():
        definition = hour(profile)
        scenario = generate(definition)
        best, median, cpu = timed(lambda d=definition: generate(d), args.repeat)
        batches = scenario.frames[:120]
        w = time.perf_counter()
        for frame in batches:
            Batch.model_validate(frame.to_batch().model_dump())
        naive = (time.perf_counter() - w) / len(batches) * len(scenario.frames)
        rows.append((profile, scenario.samples.num_rows, len(scenario.series.keys), best,
                     median, cpu, naive))
        print(rows[-1])
    with tempfile.TemporaryDirectory() as tmp:
        scenario = generate(hour("web-vm"))
        counter = iter(range(1000))
        write = timed(lambda: write_generated(scenario, Path(tmp) / str(next(counter))), 1)
    definitions = load_all(REPO / "fixtures" / "scenarios")
    w = time.perf_counter()
    steps = 0
    for definition in definitions:
        steps += len(generate(definition).frames)
    library = time.perf_counter() - w
    load_after = os.getloadavg()[0]
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        SECTION,
        "",
        f"{day}, {os.cpu_count()} CPUs, load average {load_before:.1f} before and "
        f"{load_after:.1f} after (a shared machine: other engineers' test runs). One hour at "
        f"1 s resolution (3600 batches) of a control scenario per built-in profile, "
        f"{args.repeat} runs each; the naive column builds the same batches as validated "
        "pydantic `Batch` objects (120 timed, scaled to the hour).",
        "",
        "| profile | samples | series | generate best (s) | median (s) | median CPU (s) "
        "| naive pydantic (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for profile, samples, series, best, median, cpu, naive in rows:
        lines.append(f"| {profile} | {samples:,} | {series} | **{best:.2f}** | {median:.2f} "
                     f"| {cpu:.2f} | {naive:.1f} |")
    lines += [
        "",
        f"Writing the web-vm hour (3600 batch digests, journal and evidence package): "
        f"{write[0]:.1f} s. The whole library ({len(definitions)} scenarios, {steps:,} "
        f"batches) generates in {library:.1f} s.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.no_write:
        return
    path = REPO / "docs" / "benchmarks.md"
    doc = path.read_text()
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    doc = pattern.sub(text + "\n", doc) if pattern.search(doc) else doc.rstrip() + "\n\n" + text
    path.write_text(doc)


if __name__ == "__main__":
    main()
