"""Live lab: how fast each injected fault becomes visible, and what setup and cleanup cost.

For every live injector, in one run on this machine, now: the time ``run_injection`` takes to
hand over a running fault (stale sweep, pre-flight, creating everything), the time from then
until an INDEPENDENT observation (kernel files and tools, not sreagent's collector) first shows
the fault, and the time undo plus the leftover check take. The observations are the ones the
tests in tests/lab/test_injectors.py assert on:

- cpu-hog: the hog's threads have asked for >= 0.5 CPU-s (schedstat run + wait)
- cgroup-throttle: the cgroup's cpu.stat nr_throttled >= 1
- memory-oom: the cgroup's memory.oom_control oom_kill >= 1 (limit 64 MiB, leak 32 MiB/s)
- io-saturation: /sys/block/<dev>/stat shows >= 8 IOs in flight
- net-loss: RetransSegs in the sender's namespace >= 1 (nftables+tbf or netem)
- fd-leak: /proc/<pid>/fd holds >= 90 % of RLIMIT_NOFILE (limit 4096, 2000 fds/s)
- noisy-neighbour: the victim's cgroup2 cpu.pressure some total grew by >= 50 ms

Writes the figures to docs/benchmarks.md under "## Live lab (bench/lab_live.py)" (replacing
that section only) and prints them. Root only:

    .venv/bin/python bench/lab_live.py [--repeat 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sreagent.lab.live import Injection, run_injection  # noqa: E402
from tests.lab import observe as ob  # noqa: E402

SECTION = "## Live lab (bench/lab_live.py)"
CGROUP = Path("/sys/fs/cgroup")

Check = Callable[[], bool]


def _pid(inj: Injection) -> int:
    return int(inj.injected_entity.removeprefix("process/"))


def cpu_hog(inj: Injection) -> Check:
    pid = _pid(inj)
    start = ob.demanded_cpu_seconds(pid)
    return lambda: ob.demanded_cpu_seconds(pid) - start >= 0.5


def cgroup_throttle(inj: Injection) -> Check:
    stat = CGROUP / "cpu" / inj.plan.run_name / "cpu.stat"
    return lambda: ob.flat_keyed(stat)["nr_throttled"] >= 1


def memory_oom(inj: Injection) -> Check:
    control = CGROUP / "memory" / inj.plan.run_name / "memory.oom_control"
    return lambda: ob.flat_keyed(control)["oom_kill"] >= 1


def io_saturation(inj: Injection) -> Check:
    dev = inj.injected_entity.removeprefix("disk/")
    return lambda: ob.block_stat(dev)[8] >= 8


def net_loss(inj: Injection) -> Check:
    ns = inj.injector.sender_netns()  # type: ignore[attr-defined]
    return lambda: ob.snmp_tcp(ns, "RetransSegs") >= 1


def fd_leak(inj: Injection) -> Check:
    pid = _pid(inj)
    return lambda: ob.fd_count(pid) >= 0.9 * 4096


def noisy_neighbour(inj: Injection) -> Check:
    path = CGROUP / "unified" / inj.plan.run_name / "victim" / "cpu.pressure"
    start = ob.pressure_total_us(path)
    return lambda: ob.pressure_total_us(path) - start >= 50_000


CASES: list[tuple[str, dict[str, Any], Callable[[Injection], Check]]] = [
    ("cpu-hog", {}, cpu_hog),
    ("cgroup-throttle", {}, cgroup_throttle),
    ("memory-oom", {"limit_mib": 64, "leak_mib_per_s": 32}, memory_oom),
    ("io-saturation", {"size_mib": 64}, io_saturation),
    ("net-loss", {}, net_loss),
    ("fd-leak", {"limit": 4096, "fds_per_s": 2000}, fd_leak),
    ("noisy-neighbour", {}, noisy_neighbour),
]


def measure(
    name: str, options: dict[str, Any], make_check: Callable[[Injection], Check], limit_s: float
) -> dict[str, float]:
    t0 = time.monotonic()
    with run_injection(name, limit_s, options=options) as inj:
        ready = time.monotonic()
        check = make_check(inj)
        visible = None
        while time.monotonic() - ready < limit_s:
            if check():
                visible = time.monotonic()
                break
            time.sleep(0.02)
        exit_start = time.monotonic()
    done = time.monotonic()
    assert inj.cleanup is not None
    if not inj.cleanup.ok:
        raise SystemExit(f"{name}: cleanup failed: {inj.cleanup}")
    return {
        "setup_s": ready - t0,
        "visible_s": float("nan") if visible is None else visible - ready,
        "cleanup_s": done - exit_start,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=float, default=8.0, help="fault duration cap per run (s)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    load_before = os.getloadavg()[0]
    rows = []
    for name, options, make_check in CASES:
        runs = [measure(name, options, make_check, args.limit) for _ in range(args.repeat)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        worst = max(r["visible_s"] for r in runs)
        rows.append(
            f"| {name} | {med['setup_s']:.2f} | {med['visible_s']:.2f} | {worst:.2f} | {med['cleanup_s']:.2f} |"
        )
        print(rows[-1], flush=True)
    load_after = os.getloadavg()[0]
    body = "\n".join(
        [
            SECTION,
            "",
            f"Every live injector {args.repeat} times in one run ({time.strftime('%Y-%m-%d', time.gmtime())}, "
            f"{os.cpu_count()} cores, load average {load_before:.1f} before and {load_after:.1f} after: "
            "other engineers' test runs share the machine). Setup is `run_injection` entry to the yield "
            "(stale sweep, pre-flight, creation, workers started); visible is from there to the first "
            "independent observation named in the script's docstring; cleanup is undo plus the "
            "leftover check. Seconds, median (and worst for visibility).",
            "",
            "| scenario | setup | visible (median) | visible (worst) | cleanup |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    print(body)
    if not args.no_write:
        path = REPO / "docs" / "benchmarks.md"
        text = path.read_text()
        if SECTION in text:
            start = text.index(SECTION)
            nxt = text.find("\n## ", start + len(SECTION))
            text = text[:start] + body + (text[nxt + 1 :] if nxt != -1 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + body
        path.write_text(text)


if __name__ == "__main__":
    main()
