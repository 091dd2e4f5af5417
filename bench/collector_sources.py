"""CPU per source of the collector's Sampler, side by side in one run.

bench/collector.py measures the collector as a whole against node_exporter; this script
breaks a sample down by source, so the cost of each kernel interface is visible, and shows
each kernel path next to its procfs fallback (``kernel_interfaces=False``) on the same host
in the same run. Thread CPU time per read, median over the run.

Writes "## Collector sources (bench/collector_sources.py)" in docs/benchmarks.md (replacing
that section only; earlier "### Session N" sub-sections are kept). Run as root so the kernel paths
are taken:

    .venv/bin/python bench/collector_sources.py [--samples 40] [--no-write]
    .venv/bin/python bench/collector_sources.py --before /tmp/collector-before  # A/B

``--before TREE`` also measures the collector of another checkout (``git worktree add
/tmp/collector-before <commit>``): this same script runs in child processes with
``PYTHONPATH=TREE`` and without, alternating, ``--rounds`` times each, so both trees see the
same machine and load; the medians over all rounds go side by side in "### Session 5".

Every figure comes with a control: a fixed pure-Python loop timed the same way (after the
same sleep), next to its time in a tight loop. On this shared VM code that runs right after a
sleep takes 1.3-1.7 times its tight-loop CPU time, whatever it does; the control shows the
factor of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sreagent.collector import Sampler, SamplerOptions

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
SECTION = "## Collector sources (bench/collector_sources.py)"


def run(
    options: SamplerOptions, samples: int, gap: float
) -> tuple[dict[str, float], float, dict[str, str]]:
    """Median CPU ms per source read and per whole sample (process scan excluded)."""
    per_source, whole, modes = run_raw(options, samples, gap)
    return (
        {k: statistics.median(v) for k, v in per_source.items()},
        statistics.median(whole),
        modes,
    )


def run_raw(
    options: SamplerOptions, samples: int, gap: float
) -> tuple[dict[str, list[float]], list[float], dict[str, str]]:
    """CPU ms of every source read and of every whole sample."""
    per_source: dict[str, list[float]] = {}
    whole: list[float] = []
    with Sampler(options=options) as sampler:
        modes = {c.source: c.mode for c in sampler.capabilities()}
        sampler.prime(time.time_ns())
        for _ in range(samples):
            time.sleep(gap)
            started = time.thread_time_ns()
            sampler.sample(time.time_ns())
            whole.append((time.thread_time_ns() - started) / 1e6)
            for name, seconds in sampler.source_cpu_seconds().items():
                per_source.setdefault(name, []).append(seconds * 1e3)
    return per_source, whole, modes


def _control_work() -> int:
    total = 0
    for i in range(10_000):
        total += i * i
    return total


def control(samples: int, gap: float) -> tuple[list[float], list[float]]:
    """CPU ms of a fixed pure-Python loop after ``gap`` of sleep, and in a tight loop."""
    after_sleep = []
    for _ in range(samples):
        time.sleep(gap)
        started = time.thread_time_ns()
        _control_work()
        after_sleep.append((time.thread_time_ns() - started) / 1e6)
    tight = []
    for _ in range(samples):
        started = time.thread_time_ns()
        _control_work()
        tight.append((time.thread_time_ns() - started) / 1e6)
    return after_sleep, tight


def measure_json(samples: int, gap: float) -> dict[str, Any]:
    """The fast-sample figures of whichever ``sreagent`` this interpreter imports."""
    import sreagent

    base = {"process_every": 10**6, "inventory_every": 10**6, "disabled": frozenset({"scrape"})}
    per_source, whole, _ = run_raw(SamplerOptions(**base), samples, gap)
    after_sleep, tight = control(samples, gap)
    with Sampler(options=SamplerOptions(**base)) as sampler:
        sampler.prime(time.time_ns())
        last = sampler.sample(time.time_ns())
        # rows (this checkout) or Sample models (a --before tree from before session 5)
        rows = len(last.rows) if hasattr(last, "rows") else len(last.samples)
        tight_whole = []
        for _ in range(samples):
            started = time.thread_time_ns()
            sampler.sample(time.time_ns())
            tight_whole.append((time.thread_time_ns() - started) / 1e6)
    return {
        "tree": str(Path(sreagent.__file__).resolve().parent.parent),
        "per_source": per_source,
        "whole": whole,
        "tight_whole": tight_whole,
        "control_after_sleep": after_sleep,
        "control_tight": tight,
        "rows": rows,
        "load": os.getloadavg()[0],
    }


def compare(before: str, rounds: int, samples: int, gap: float) -> str:
    """Before and after, alternating child processes; the "### Session 5" sub-section."""
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    trees = {"before": before, "after": str(REPO)}
    loads = [os.getloadavg()]
    for i in range(rounds):
        order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
        for name in order:
            env = {**os.environ, "PYTHONPATH": trees[name]}
            cmd = [sys.executable, __file__, "--json", "--samples", str(samples)]
            cmd += ["--gap", str(gap)]
            got = subprocess.run(
                cmd, env=env, cwd=trees[name], capture_output=True, text=True, check=True
            )
            runs[name].append(json.loads(got.stdout))
    loads.append(os.getloadavg())

    def pooled(name: str, key: str) -> float:
        return statistics.median(v for run in runs[name] for v in run[key])

    def source(name: str, src: str) -> float:
        return statistics.median(v for run in runs[name] for v in run["per_source"].get(src, []))

    for name in runs:
        tree = runs[name][0]["tree"]
        if Path(tree) != Path(trees[name]).resolve():
            raise SystemExit(f"{name}: the child imported sreagent from {tree}, not {trees[name]}")
    head = subprocess.run(
        ["git", "-C", before, "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "### Session 5: fast sample before and after, side by side",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
        f"load average {loads[0][0]:.1f} at the start and {loads[1][0]:.1f} at the end "
        f"(shared machine). Before: commit {head} (a `git worktree`); after: this checkout. "
        f"{rounds} rounds, alternating which tree goes first, {samples} samples {gap} s apart "
        "per round and tree (process scan and inventory off, as above); medians over all "
        "rounds, thread CPU ms.",
        "",
        "| figure | before | after | change |",
        "|---|---|---|---|",
    ]

    def row(label: str, b: float, a: float, unit: str = "ms") -> str:
        return f"| {label} | {b:.3f} {unit} | {a:.3f} {unit} | {100 * (a - b) / b:+.0f} % |"

    lines.append(
        row(
            "**fast sample, after a sleep (target <= 2 ms)**",
            pooled("before", "whole"),
            pooled("after", "whole"),
        )
    )
    lines.append(
        row(
            "fast sample, tight loop",
            pooled("before", "tight_whole"),
            pooled("after", "tight_whole"),
        )
    )
    names = sorted(
        {n for run in runs["before"] for n in run["per_source"]},
        key=lambda n: -source("before", n),
    )
    for name in names:
        lines.append(row(f"{name}", source("before", name), source("after", name)))
    lines.append(
        row(
            "control: fixed Python loop after the same sleep",
            pooled("before", "control_after_sleep"),
            pooled("after", "control_after_sleep"),
        )
    )
    lines.append(
        row(
            "control: the same loop, tight",
            pooled("before", "control_tight"),
            pooled("after", "control_tight"),
        )
    )

    # The machine's speed moves between child processes on a shared VM; the fast sample in
    # units of the control loop timed the same way in the same child takes most of that out.
    def relative(name: str, key: str, control_key: str) -> float:
        return statistics.median(
            statistics.median(run[key]) / statistics.median(run[control_key]) for run in runs[name]
        )

    for label, key, control_key in (
        ("fast sample after a sleep / control after a sleep", "whole", "control_after_sleep"),
        ("fast sample tight / control tight", "tight_whole", "control_tight"),
    ):
        b = relative("before", key, control_key)
        a = relative("after", key, control_key)
        lines.append(f"| {label} (ratio) | {b:.2f} | {a:.2f} | {100 * (a - b) / b:+.0f} % |")
    rows_b = statistics.median(r["rows"] for r in runs["before"])
    rows_a = statistics.median(r["rows"] for r in runs["after"])
    lines += ["", f"Sample rows per fast sample: {rows_b:.0f} before, {rows_a:.0f} after.", ""]
    return "\n".join(lines)


def encode_paths(samples: int, gap: float) -> dict[str, float]:
    """Median CPU us per interval of the daemon's batch JSON from sample rows, against the
    same batch from ``Sample`` models (the models path before session 5), alternating on the
    same sampler outputs; and the CPU of making the models, which that path paid inside the
    fast sample."""
    import tempfile

    from sreagent.collector._wire import encode, encode_rows
    from sreagent.collector.config import load_settings
    from sreagent.collector.daemon import build_parts, make_identity

    res: dict[str, list[float]] = {"rows": [], "models": [], "making": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Sampler(options=SamplerOptions(process_every=10**6, inventory_every=10**6)) as sampler,
    ):
        identity, _ = make_identity(load_settings(None, {"state_dir": tmp}))
        sampler.prime(time.time_ns())
        for seq in range(1, samples + 1):
            time.sleep(gap)
            output = sampler.sample(time.time_ns())
            caps = sampler.capabilities()
            started = time.thread_time_ns()
            models = output.samples
            res["making"].append((time.thread_time_ns() - started) / 1e3)
            for name in ("rows", "models") if seq % 2 else ("models", "rows"):
                started = time.thread_time_ns()
                parts = build_parts(identity, seq, time.time_ns(), output, caps, [])
                if name == "rows":
                    encode_rows(parts.header, parts.rows, "json")
                else:
                    encode(parts.header.model_copy(update={"samples": models}), "json")
                res[name].append((time.thread_time_ns() - started) / 1e3)
    return {k: statistics.median(v) for k, v in res.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.1)
    parser.add_argument("--processes", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json", action="store_true", help="fast-sample figures as JSON only")
    parser.add_argument("--before", help="another checkout to measure side by side")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure_json(args.samples, args.gap)))
        return
    session_ab = compare(args.before, args.rounds, args.samples, args.gap) if args.before else ""
    # The process scan and inventory run on their own intervals; keep them out of the fast
    # figures and measure the scan separately below.
    base = {"process_every": 10**6, "inventory_every": 10**6, "disabled": frozenset({"scrape"})}
    kernel, kernel_whole, kernel_modes = run(SamplerOptions(**base), args.samples, args.gap)
    procfs, procfs_whole, procfs_modes = run(
        SamplerOptions(**base, kernel_interfaces=False), args.samples, args.gap
    )
    scans = []
    # Bring the host to at least --processes processes with idle children, as the target
    # ("<= 20 ms for 300 processes") is stated for that many.
    have = sum(1 for p in os.listdir("/proc") if p.isdigit())
    children = [subprocess.Popen(["sleep", "600"]) for _ in range(max(0, args.processes - have))]
    try:
        with Sampler(
            options=SamplerOptions(enabled=frozenset({"processes", "taskstats"}))
        ) as sampler:
            sampler.prime(time.time_ns())
            for _ in range(10):
                time.sleep(args.gap)
                sampler.sample(time.time_ns(), full=True)
                scans.append(sampler.source_cpu_seconds()["processes"] * 1e3)
        processes = sum(1 for p in os.listdir("/proc") if p.isdigit())
    finally:
        for child in children:
            child.kill()
            child.wait()
    paths = encode_paths(args.samples * 2, args.gap)
    load = os.getloadavg()[0]
    lines = [
        SECTION,
        "",
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} CPUs, "
        f"{'root' if os.geteuid() == 0 else 'unprivileged'}, load average {load:.1f} "
        f"(shared machine), {args.samples} samples {args.gap} s apart. Median thread CPU "
        "per read in ms; the process scan and inventory are on their own intervals and "
        "not in the sample figure.",
        "",
        "| source | kernel path (mode) | ms | procfs fallback (mode) | ms |",
        "|---|---|---|---|---|",
    ]
    for name in kernel:
        lines.append(
            f"| {name} | {kernel_modes.get(name, '?')} | {kernel[name]:.3f} | "
            f"{procfs_modes.get(name, '?')} | {procfs.get(name, float('nan')):.3f} |"
        )
    lines += [
        f"| **whole fast sample** | | **{kernel_whole:.2f}** | | **{procfs_whole:.2f}** |",
        "",
        f"Full process scan ({processes} processes, top 10 enriched, taskstats for them): "
        f"median {statistics.median(scans):.1f} ms, best {min(scans):.1f} ms CPU "
        "(target in bench/collector.py: <= 20 ms for 300 processes).",
        "",
        "What the daemon does with a fast sample's rows (this checkout, alternating on the same "
        f"{args.samples * 2} sampler outputs, {args.gap} s apart, median thread CPU): batch "
        f"build + JSON from the rows {paths['rows']:.0f} us, the same batch from `Sample` "
        f"models {paths['models']:.0f} us once the models exist, and making the models "
        f"{paths['making']:.0f} us, which the models path paid inside the fast sample before "
        "session 5. The bytes are the same (tests/collector/test_rows_wire.py).",
        "",
    ]
    text = "\n".join(lines)
    if session_ab:
        text += "\n" + session_ab
    print(text)
    if not args.no_write:
        doc = DOC.read_text()
        if SECTION in doc:
            # Earlier A/B sub-sections are records of runs this invocation does not repeat:
            # keep every "### Session N" sub-section the new text does not replace.
            start = doc.index(SECTION)
            end = doc.find("\n## ", start + len(SECTION))
            old = doc[start : end if end >= 0 else len(doc)]
            for part in old.split("\n### ")[1:]:
                heading = part.split("\n", 1)[0]
                if heading.startswith("Session ") and f"\n### {heading}" not in "\n" + text:
                    text = text.rstrip("\n") + "\n\n### " + part.rstrip("\n") + "\n"
        if SECTION in doc:
            start = doc.index(SECTION)
            end = doc.find("\n## ", start + len(SECTION))
            doc = doc[:start] + text + ("" if end < 0 else doc[end:])
        else:
            doc = doc.rstrip("\n") + "\n\n" + text
        DOC.write_text(doc)


if __name__ == "__main__":
    main()
