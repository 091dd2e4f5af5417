"""Cost of the kernel-event sources: /dev/kmsg and eBPF (BCC and bpftrace) side by side.

For each source: start-up wall time (BCC compiles its programs then), the collector's CPU per
``read()`` (process CPU, all threads), the bpftrace child's CPU per interval, and the kernel
time spent inside the BPF programs themselves (``kernel.bpf_stats_enabled``, read back with
``bpftool prog show``), all under the same background workload in one run: a steady stream of
short-lived processes, loopback TCP connections and direct disk writes.

Writes "## Kernel-event sources (bench/ebpf_kmsg.py)" in docs/benchmarks.md (replacing that
section only). Run as root:

    .venv/bin/python bench/ebpf_kmsg.py [--reads 40] [--interval 0.25] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sreagent.collector._ebpf import EbpfSource
from sreagent.collector._kmsg import KmsgSource
from sreagent.collector._source import Roots, Source

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
SECTION = "## Kernel-event sources (bench/ebpf_kmsg.py)"
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
TICK = os.sysconf("SC_CLK_TCK")


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _bpf_run_ns() -> tuple[int, int]:
    """Total run_time_ns and run_cnt over every loaded BPF program (needs bpf_stats)."""
    shown = subprocess.run(
        ["bpftool", "prog", "show", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    progs = json.loads(shown.stdout or "[]")
    return (
        sum(int(p.get("run_time_ns", 0)) for p in progs),
        sum(int(p.get("run_cnt", 0)) for p in progs),
    )


WORKLOAD = """
import mmap, os, socket, subprocess, sys, time
server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]
target = sys.argv[1]
buf = mmap.mmap(-1, 4096)  # O_DIRECT wants a page-aligned buffer
fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
try:
    while True:
        subprocess.run(["/bin/true"], check=False)
        with socket.create_connection(("127.0.0.1", port)):
            server.accept()[0].close()
        os.pwrite(fd, buf, 0)
        time.sleep(0.02)
finally:
    os.close(fd)
"""


@contextlib.contextmanager
def _workload() -> Iterator[None]:
    """About 50 execs/s, 50 loopback connections/s and a direct 4 KiB write every 20 ms, in a
    separate process so its CPU is not counted as the collector's."""
    target = REPO / f".bench-ebpf-{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-c", WORKLOAD, str(target)])
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        target.unlink(missing_ok=True)


def measure(make: Callable[[], Source], reads: int, interval: float) -> dict[str, float | str]:
    before_ns, before_cnt = _bpf_run_ns()
    t0 = time.monotonic()
    source = make()
    start_s = time.monotonic() - t0
    cap = source.capability()
    child = getattr(getattr(source, "_backend", None), "_proc", None)
    child_before = _child_cpu(child.pid) if child is not None else 0.0
    costs = []
    wall0 = time.monotonic()
    try:
        source.read(time.time_ns())
        for _ in range(reads):
            time.sleep(interval)
            cpu = _process_cpu()
            source.read(time.time_ns())
            costs.append((_process_cpu() - cpu) * 1000)
        wall = time.monotonic() - wall0
        child_cpu = (_child_cpu(child.pid) - child_before) if child is not None else 0.0
        after_ns, after_cnt = _bpf_run_ns()
    finally:
        source.close()
    return {
        "mode": f"{cap.mode} ({cap.reason.split(';')[0]})",
        "start_s": start_s,
        "read_ms": statistics.median(costs),
        "child_ms_per_s": child_cpu * 1000 / wall,
        "bpf_ms_per_s": (after_ns - before_ns) / 1e6 / wall,
        "bpf_runs_per_s": (after_cnt - before_cnt) / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the kernel-event sources need it")
    stats_before = STATS.read_text().strip()
    STATS.write_text("1")
    rows = []
    state = tempfile.mkdtemp(prefix="bench-kmsg-")
    try:
        with _workload():
            for label, make in (
                ("kmsg", lambda: KmsgSource(Roots(), Path(state))),
                ("ebpf, bcc", lambda: EbpfSource(backends=["bcc"])),
                ("ebpf, bpftrace", lambda: EbpfSource(backends=["bpftrace"])),
            ):
                rows.append((label, measure(make, args.reads, args.interval)))
    finally:
        STATS.write_text(stats_before)
    load = os.getloadavg()[0]
    lines = [
        SECTION,
        "",
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, root, load average {load:.1f} (shared "
        f"machine), {args.reads} reads {args.interval} s apart under a background of ~50 execs/s, "
        "~50 loopback TCP connections/s and 50 direct 4 KiB writes/s. *read* is the collector "
        "process's CPU per `read()` (median; the workload runs in its own process); *child* the bpftrace process's CPU; *in-kernel* the "
        "run time of all loaded BPF programs (kernel.bpf_stats_enabled, other tools' programs "
        "included), per second of wall time.",
        "",
        "| source | mode | start-up s | read ms CPU | child ms CPU/s | in-kernel BPF ms/s | BPF runs/s | total ms CPU/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        # Everything the source costs per second of wall time: its reads, its child, its programs.
        total = (
            float(r["read_ms"]) / args.interval
            + float(r["child_ms_per_s"])
            + float(r["bpf_ms_per_s"])
        )
        lines.append(
            f"| {label} | {r['mode']} | {r['start_s']:.2f} | {r['read_ms']:.3f} | "
            f"{r['child_ms_per_s']:.2f} | {r['bpf_ms_per_s']:.2f} | {r['bpf_runs_per_s']:.0f} | {total:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        doc = DOC.read_text()
        if SECTION in doc:
            head, _, rest = doc.partition(SECTION)
            tail = rest.split("\n## ", 1)
            doc = head + text + ("\n## " + tail[1] if len(tail) > 1 else "")
        else:
            doc = doc.rstrip("\n") + "\n\n" + text
        DOC.write_text(doc)


if __name__ == "__main__":
    main()
