"""Collector overhead, side by side with Debian's prometheus-node-exporter, in one run.

Measures, on this machine, now:

1. CPU per fast sample: the facade's regular sample (every source due at the base interval;
   the process scan is on its slower interval), thread CPU time per call.
2. CPU per full snapshot with processes, with the host brought to at least 300 processes
   (idle ``sleep`` children are started for the run), and the process source's share of it.
3. CPU per daemon interval beyond sampling: building the batch, encoding it (JSON, the
   default, gzipped; and Arrow IPC), appending it to the spool.
4. The real daemon (``python -m sreagent collect``, default sources, 1 s interval) sending to a
   small acknowledging ingest server, running at the same time as ``prometheus-node-exporter``
   scraped once a second over loopback: CPU of each process from /proc/<pid>/stat over the
   same window, the collector's steady RSS (and PSS), CPU per batch against CPU per scrape.

Writes the figures to docs/benchmarks.md under "## Collector overhead (bench/collector.py)"
(replacing that section only) and prints them. Run as root to include the kernel sources:

    .venv/bin/python bench/collector.py [--seconds 40] [--no-write]
    .venv/bin/python bench/collector.py --before /tmp/collector-before   # A/B, one run

``--before TREE`` first runs this same script in a child process with ``PYTHONPATH=TREE``
(another checkout, e.g. ``git worktree add /tmp/collector-before <commit>``; its daemon child
inherits the path), then measures this checkout, and writes both side by side in a
"### Session 5" sub-section; earlier sessions' sub-sections are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
SECTION = "## Collector overhead (bench/collector.py)"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


# --------------------------------------------------------------------------- helpers


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    fields = raw[raw.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_pss(pid: int) -> tuple[int, int | None]:
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    pss = None
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_count() -> int:
    return sum(1 for p in Path("/proc").iterdir() if p.name.isdigit())


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# --------------------------------------------------------------------------- in-process parts


def measure_in_process(samples: int) -> dict[str, Any]:
    from sreagent.collector import Sampler, SamplerOptions, daemon
    from sreagent.collector._wire import default_compression, encode
    from sreagent.collector.config import load_settings
    from sreagent.collector.daemon import build_batch, make_identity
    from sreagent.collector.spool import Spool
    from sreagent.collector.transport import BatchKey, SpooledBatch, Transport

    out: dict[str, Any] = {}
    # 1. fast samples: process scan far off, everything else every call
    with Sampler(options=SamplerOptions(process_every=10**6, inventory_every=10**6)) as sampler:
        sampler.prime(time.time_ns())
        costs = []
        sizes = []
        per_source: dict[str, list[float]] = {}
        for _ in range(samples):
            time.sleep(0.2)
            started = time.thread_time()
            output = sampler.sample(time.time_ns())
            costs.append(time.thread_time() - started)
            # rows (this checkout) or Sample models (a --before tree from before session 5)
            sizes.append(len(output.rows) if hasattr(output, "rows") else len(output.samples))
            for name, cost in sampler.source_cpu_seconds().items():
                per_source.setdefault(name, []).append(cost)
        out["fast_sample_per_source_median_s"] = {
            name: statistics.median(values)
            for name, values in per_source.items()
            if name not in ("processes", "taskstats", "inventory")
        }
        out["fast_sample_cpu_median_s"] = statistics.median(costs)
        out["fast_sample_cpu_p90_s"] = statistics.quantiles(costs, n=10)[-1]
        out["fast_sample_rows"] = int(statistics.median(sizes))
        out["fast_sources"] = sampler.source_names

        # 3. what the daemon adds per interval: build, encode (each encoding, with the
        # Content-Encoding the transport would apply by default), spool
        for encoding in ("json", "arrow"):
            compress = Transport(["http://127.0.0.1:9"], compression=default_compression(encoding))
            with tempfile.TemporaryDirectory() as tmp:
                settings = load_settings(None, {"state_dir": tmp})
                identity, _ = make_identity(settings)
                spool = Spool(Path(tmp) / "spool")
                extra = []
                for seq in range(1, samples + 1):
                    output = sampler.sample(time.time_ns())
                    started = time.thread_time()
                    if hasattr(daemon, "build_parts"):
                        # session 5 on: what CollectorDaemon.step does, rows spliced into the
                        # header's JSON without a Sample model per row
                        from sreagent.collector._wire import encode_rows

                        parts = daemon.build_parts(
                            identity, seq, time.time_ns(), output, sampler.capabilities(), []
                        )
                        content_type, body = encode_rows(parts.header, parts.rows, encoding)
                    else:
                        batch = build_batch(
                            identity, seq, time.time_ns(), output, sampler.capabilities(), []
                        )
                        content_type, body = encode(batch, encoding)
                    key = BatchKey(identity.collector_id, identity.producer_epoch, seq)
                    spool.append(SpooledBatch(key, content_type, body).to_bytes())
                    payload, _ = compress._compress(body)
                    extra.append(time.thread_time() - started)
                spool.close()
                compress.close()
                out[f"batch_build_encode_spool_cpu_median_s_{encoding}"] = statistics.median(extra)
                out[f"batch_bytes_{encoding}"] = len(payload)

    # 2. full snapshot with at least 300 processes
    sleepers = []
    try:
        while process_count() < 300:
            sleepers.append(subprocess.Popen(["sleep", "600"]))
        with Sampler() as sampler:
            sampler.prime(time.time_ns())
            full, procs, counts = [], [], []
            for _ in range(max(5, samples // 4)):
                time.sleep(0.3)
                started = time.thread_time()
                output = sampler.sample(time.time_ns(), full=True)
                full.append(time.thread_time() - started)
                procs.append(sampler.source_cpu_seconds().get("processes", 0.0))
                counts.append(process_count())
            out["full_snapshot_cpu_median_s"] = statistics.median(full)
            out["process_scan_cpu_median_s"] = statistics.median(procs)
            out["processes_on_host"] = int(statistics.median(counts))
            out["process_rows_in_batch"] = len(output.processes)
            out["full_snapshot_capabilities"] = {c.source: c.mode for c in sampler.capabilities()}
    finally:
        for proc in sleepers:
            proc.kill()
        for proc in sleepers:
            proc.wait()
    return out


def import_rss() -> dict[str, int]:
    """RSS of a fresh interpreter after importing each module (where the daemon's memory goes)."""
    out = {}
    for module in (
        "sys",
        "pyarrow",
        "sreagent.telemetry",
        "sreagent.collector",
        "sreagent.collector.daemon",
        "sreagent.collector.__main__",
        "sreagent.cli",
        "bcc",
    ):
        # sreagent.cli: what `sreagent collect` loads (every command group is registered)
        load = "from sreagent.cli import _register; _register()" if module == "sreagent.cli" else ""
        code = (
            f"import {module}, sys\n{load}\n"
            "print(int(open('/proc/self/statm').read().split()[1]) * "
            f"{os.sysconf('SC_PAGE_SIZE')}, 'polars' in sys.modules)"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if done.returncode == 0:
            rss, polars = done.stdout.split()
            name = "sreagent.cli (all command groups)" if module == "sreagent.cli" else module
            out[name + (" (loads polars)" if polars == "True" else "")] = int(rss)
    return out


def send_cost(rounds: int) -> float:
    """Client-side CPU of one POST and acknowledgement through the collector's transport."""
    from sreagent.collector._wire import default_compression, encode
    from sreagent.collector.transport import BatchKey, Transport
    from sreagent.telemetry import Batch, Sample

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ack)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # as the daemon sends by default: JSON, gzipped by the transport
    transport = Transport(
        [f"http://127.0.0.1:{server.server_address[1]}"], compression=default_compression("json")
    )
    costs = []
    try:
        for seq in range(1, rounds + 1):
            batch = Batch(
                collector_id="bench",
                host="bench",
                producer_epoch="e1",
                seq=seq,
                sent_at_ns=seq,
                samples=[
                    Sample(ts_ns=seq, metric="load_average_1m", entity="host", value=1.0)
                    for _ in range(150)
                ],
            )
            content_type, body = encode(batch, "json")
            started = time.thread_time()
            result = transport.send(BatchKey("bench", "e1", seq), body, content_type)
            costs.append(time.thread_time() - started)
            assert result.outcome == "delivered", result
    finally:
        transport.close()
        server.shutdown()
    return statistics.median(costs)


# --------------------------------------------------------------------------- side by side


class _Ack(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = 0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        from sreagent.telemetry import decode_batch

        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        header = decode_batch(
            body, self.headers.get("Content-Type", ""), self.headers.get("Content-Encoding")
        ).header
        type(self).received += 1
        data = json.dumps(
            {
                "status": "accepted",
                "collector_id": header.collector_id,
                "producer_epoch": header.producer_epoch,
                "seq": header.seq,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


LIGHT_ENTRY = ("-m", "sreagent.collector")
"""The collector's own entry point (what a node runs); ``-m sreagent collect`` is the full CLI."""
FULL_CLI = ("-m", "sreagent", "collect")


def side_by_side(
    seconds: float,
    warmup: float,
    disabled: tuple[str, ...] = (),
    entry: tuple[str, ...] = LIGHT_ENTRY,
) -> dict[str, Any]:
    if not Path(NODE_EXPORTER).exists():
        raise SystemExit(f"{NODE_EXPORTER} is missing: apt-get install prometheus-node-exporter")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ack)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ne_port = free_port()
    state = Path(tempfile.mkdtemp(prefix="sreagent-bench-"))
    config = state / "collector.toml"
    config.write_text(
        f'interval_seconds = 1.0\nstate_dir = "{state}"\n'
        f'[transport]\nendpoints = ["http://127.0.0.1:{server.server_address[1]}"]\n'
        f"[sources]\ndisabled = {json.dumps(list(disabled))}\n"
        # measure the full cost: a budget of a whole core keeps self-protection from shedding
        "[protection]\ncpu_budget_cores = 1.0\n"
    )
    exporter = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{ne_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    collector = subprocess.Popen(
        [sys.executable, *entry, "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{ne_port}/metrics"
    result: dict[str, Any] = {}
    try:
        with httpx.Client(timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:  # node_exporter up?
                try:
                    client.get(url)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            # warm-up: the collector starts its sources (BCC compiles its programs, which takes
            # many seconds of CPU), both settle; measure only once batches flow steadily
            started = time.monotonic()
            first = _Ack.received
            series = 0
            while time.monotonic() - started < warmup or _Ack.received - first < 5:
                series = client.get(url).text.count("\n")
                time.sleep(1.0)
                if time.monotonic() - started > 180:
                    raise SystemExit("the collector sent fewer than 5 batches in 180 s")
            c0, e0, b0 = cpu_seconds(collector.pid), cpu_seconds(exporter.pid), _Ack.received
            t0 = time.monotonic()
            scrapes = 0
            rss_samples = []
            next_due = t0
            failed = 0
            while time.monotonic() - t0 < seconds:
                try:
                    client.get(url)
                    scrapes += 1
                except httpx.HTTPError:  # a loaded machine; counted, not fatal
                    failed += 1
                rss_samples.append(rss_pss(collector.pid))
                next_due += 1.0
                time.sleep(max(0.0, next_due - time.monotonic()))
            wall = time.monotonic() - t0
            c1, e1, b1 = cpu_seconds(collector.pid), cpu_seconds(exporter.pid), _Ack.received
        batches = b1 - b0
        result = {
            "window_s": wall,
            "collector_cpu_s": c1 - c0,
            "collector_batches": batches,
            "collector_cpu_per_batch_s": (c1 - c0) / max(1, batches),
            "collector_core_share": (c1 - c0) / wall,
            "collector_rss_bytes": int(statistics.median(r for r, _ in rss_samples)),
            "collector_rss_max_bytes": max(r for r, _ in rss_samples),
            "collector_pss_bytes": int(statistics.median(p or 0 for _, p in rss_samples)),
            "exporter_cpu_s": e1 - e0,
            "exporter_scrapes": scrapes,
            "exporter_failed_scrapes": failed,
            "load_average_1m": os.getloadavg()[0],
            "exporter_cpu_per_scrape_s": (e1 - e0) / max(1, scrapes),
            "exporter_core_share": (e1 - e0) / wall,
            "exporter_rss_bytes": rss_pss(exporter.pid)[0],
            "exporter_series_lines": series,
        }
    finally:
        collector.terminate()
        try:
            _, stderr = collector.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            collector.kill()
            stderr = ""
        exporter.terminate()
        exporter.wait(timeout=10)
        server.shutdown()
        shutil.rmtree(state, ignore_errors=True)
    result["collector_exit_code"] = collector.returncode
    result["collector_warnings"] = [
        line for line in (stderr or "").splitlines() if "WARNING" in line or "ERROR" in line
    ][:5]
    return result


# --------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(inproc: dict[str, Any], variants: dict[str, dict[str, Any]]) -> str:
    main_name = next(iter(variants))
    sbs = variants[main_name]
    sample_ratio = inproc["fast_sample_cpu_median_s"] / max(1e-9, sbs["exporter_cpu_per_scrape_s"])
    rows = [
        (
            "fast sample (facade, thread CPU, median / p90)",
            f"{ms(inproc['fast_sample_cpu_median_s'])} / {ms(inproc['fast_sample_cpu_p90_s'])}",
            "<= 2 ms",
            verdict(inproc["fast_sample_cpu_median_s"] <= 0.002),
        ),
        (
            f"full snapshot with processes ({inproc['processes_on_host']} processes on the host)",
            ms(inproc["full_snapshot_cpu_median_s"]),
            "<= 20 ms",
            verdict(inproc["full_snapshot_cpu_median_s"] <= 0.020),
        ),
        ("  of which the process scan", ms(inproc["process_scan_cpu_median_s"]), "", ""),
        (
            "batch build + JSON encode + gzip + spool append, per interval (default)",
            ms(inproc["batch_build_encode_spool_cpu_median_s_json"]),
            "",
            "",
        ),
        (
            'batch build + Arrow encode + spool append, per interval (`encoding = "arrow"`)',
            ms(inproc["batch_build_encode_spool_cpu_median_s_arrow"]),
            "",
            "",
        ),
        (
            "sending one batch (gzip + httpx POST + acknowledgement check), client CPU",
            ms(inproc["send_cpu_median_s"]),
            "",
            "",
        ),
    ]
    for name, v in variants.items():
        ratio = v["collector_cpu_per_batch_s"] / max(1e-9, v["exporter_cpu_per_scrape_s"])
        rows += [
            (
                f"daemon ({name}): steady RSS, median over the window (PSS)",
                f"{v['collector_rss_bytes'] / MIB:.1f} MiB (PSS {v['collector_pss_bytes'] / MIB:.1f} MiB)",
                "<= 80 MiB",
                verdict(v["collector_rss_bytes"] <= 80 * MIB),
            ),
            (
                f"daemon ({name}): CPU at a 1 s interval, all threads, sending included",
                f"{v['collector_core_share'] * 100:.2f} % of one core",
                "<= 1 %",
                verdict(v["collector_core_share"] <= 0.01),
            ),
            (
                f"daemon ({name}): CPU per batch (process CPU / batches acknowledged)",
                ms(v["collector_cpu_per_batch_s"]),
                "",
                "",
            ),
            (
                "node_exporter beside it: CPU per scrape (scraped every 1 s)",
                ms(v["exporter_cpu_per_scrape_s"]),
                "",
                "",
            ),
            (
                f"ratio ({name}): daemon CPU per batch / node_exporter CPU per scrape",
                f"{ratio:.2f}",
                "<= 1",
                verdict(ratio <= 1.0),
            ),
        ]
    rows.append(
        (
            "ratio: fast sample / node_exporter CPU per scrape",
            f"{sample_ratio:.2f}",
            "<= 1",
            verdict(sample_ratio <= 1.0),
        )
    )
    costly = sorted(inproc["fast_sample_per_source_median_s"].items(), key=lambda kv: -kv[1])
    lines = [
        SECTION,
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{platform.node() or 'this host'} ({os.cpu_count()} CPUs, kernel {platform.release()}, "
        f"{'root' if os.geteuid() == 0 else 'unprivileged'}), by `bench/collector.py`. "
        f"Each daemon run (`python -m sreagent.collector`, the collector's own entry point, "
        f"except where the row says `sreagent collect`) and `prometheus-node-exporter` ran at "
        f"the same time over the same "
        f"{sbs['window_s']:.0f} s window (after a warm-up), the exporter scraped once a second "
        f"over loopback ({sbs['exporter_scrapes']} scrapes, about {sbs['exporter_series_lines']} "
        f"exposition lines each), the daemon sending one batch a second to a small acknowledging "
        f"server ({sbs['collector_batches']} batches), with a CPU budget of a whole core so "
        f"self-protection sheds nothing and the full cost is measured. CPU of both processes comes from "
        f"/proc/<pid>/stat (10 ms ticks); the in-process figures are thread CPU time. Load "
        f"average at the end of the windows: "
        + ", ".join(f"{v['load_average_1m']:.1f}" for v in variants.values())
        + " (the machine is shared; figures drift with it).",
        "",
        "| figure | measured | target | |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        "Fast sample, CPU per source (median): "
        + ", ".join(f"{name} {ms(cost)}" for name, cost in costly)
        + f". {inproc['fast_sample_rows']} sample rows per fast sample; a batch on the wire is "
        f"{inproc['batch_bytes_json']} bytes as gzipped JSON (the default), "
        f"{inproc['batch_bytes_arrow']} bytes as Arrow. node_exporter's own RSS: "
        f"{sbs['exporter_rss_bytes'] / MIB:.1f} MiB.",
        "",
        "RSS of a fresh interpreter after one import (where the daemon's memory goes): "
        + ", ".join(f"`{m}` {v / MIB:.0f} MiB" for m, v in inproc["import_rss_bytes"].items())
        + ".",
        "",
        CHANGES,
        "",
        BEFORE,
        "",
        READING,
    ]
    return "\n".join(lines)


CHANGES = """Session 5 (fast sample <= 2 ms): the sources hand their samples over as plain
tuples (`SourceOutput.rows`) instead of one frozen pydantic `Sample` each (about 2 us to build
against 0.1 us), built inline in the hot loops; the daemon validates the batch without its
samples and splices the rows into its JSON through pydantic-core's writer, byte for byte the
JSON of the whole model (a randomised test compares bytes and digests), so no per-sample
object is made anywhere on its path; and the netlink source takes its counters from an
RTM_GETSTATS dump of IFLA_STATS_LINK_64 only, listing links with RTM_GETLINK again only after
a kernel link notification (docs/collector.md, "Cost"). "Session 5: before and after, one
run" below has the previous commit measured by the same invocation, and "Collector sources"
the per-source A/B with a control loop.

Session 4 (fast sample <= 2 ms): cgroup entities, labels and counter keys built
once per cgroup, counters of a link or disk kept as one tuple per entity, PSI lines read by
position, `/proc/stat` split only as far as its `cpu` lines, `oom_kill` found with one
`find`, link statistics as named tuples; and the C library behind inotify looked up once per
process (`ctypes.util.find_library` ran `ldconfig` in a subprocess at every cgroup walk, so
every 30 s), with the periodic walk keeping the descriptors of files it lists again
(docs/collector.md, "Cost"); its A/B is "Session 4: before and after, one run" below."""

BEFORE = """Session 3's last run (same script, 2026-11-29 13:35 UTC, load 7.5/6.9/6.6): fast sample
2.63 ms (p90 6.84 ms), full snapshot 17.49 ms (process scan 12.85 ms), all sources RSS 54.1 MiB
and 0.97 % of a core (9.75 ms per batch, ratio 0.57), without eBPF 0.85 %; per source cgroup
0.62, netlink 0.43, cpu 0.32, memory 0.24, tcp 0.21, disk 0.20, psi 0.15, sock_diag 0.15,
perf 0.11 ms. Session 3 had changed, since its 10:21 UTC run (the "before" below): cgroups created or
removed and limit files written are seen at the next sample through inotify (the walk itself
no longer every 30 samples); sock_diag asks for IPv4 and IPv6 in one `TCPDIAG_GETSOCK` dump
(one walk of the kernel's socket hash tables instead of two, which matters most for the
every-10th-sample census); `/sys/block` is listed every 10 samples and an absent
`/sys/class/infiniband` looked for every 60; the cgroup, rtnetlink and /proc/stat parsers
build fewer objects; reads ask for 64 KiB instead of 256 KiB; and the process scan keeps the
row of a process whose `/proc/<pid>/stat` did not change (no re-parse, no read of its `io`),
so its cost follows the number of processes that ran, not of all processes (the benchmark's
300 processes are mostly idle `sleep` children, as most of a real host's are); and BCC
compiles in a short-lived child that hands the map and attachment descriptors over, so
libbcc and LLVM no longer stay mapped in the daemon (maps read with bpf(2), hash maps in
batches, the ring buffer through mmap; the `bcc` import figure below is what the daemon no
longer carries); netlink sockets are non-blocking (no poll before each send and receive) and
the facade reads the thread-CPU clock once between two sources: about 74 syscalls per fast
sample instead of about 100 (strace).

Before session 3's changes (same script, 2026-11-29 10:21 UTC, load 10.1/10.2/11.5):
fast sample 3.16 ms (p90 8.97 ms), full snapshot 29.78 ms (process scan 24.44 ms), all sources
RSS 171.4 MiB and 1.05 % of a core (10.50 ms per batch, ratio 0.61), without eBPF 53.0 MiB and
1.00 % (10.00 ms per batch, ratio 0.61); per source cgroup 0.62, netlink 0.45, cpu 0.33,
memory 0.28, disk 0.27, sock_diag 0.24, tcp 0.21, psi 0.15, perf 0.10, ib 0.07 ms. A run 13
minutes earlier (load 11.1) gave fast sample 3.19 ms, full snapshot 23.09 ms (scan 18.37 ms).

Earlier (same script, same machine; `sreagent collect`, Arrow encoding, per-scan opens of
/proc/<pid> files, the cursor replaced with two fsyncs per acknowledgement): 2026-11-29 06:33
UTC, load 9.9/8.7: fast sample 2.93 ms, full snapshot 36.46 ms (process scan 30.37 ms), batch
build + Arrow encode + spool 2.56 ms, send 2.76 ms, all sources RSS 258.1 MiB and 1.97 % of a
core (19.75 ms per batch, ratio 1.08), without eBPF RSS 140.7 MiB and 2.12 % (21.25 ms per
batch, ratio 1.05). Re-measured at 09:25 UTC the same day after atomic writes left
`sreagent.evidence` (load 8.5/7.2): fast sample 2.78 ms, full snapshot 35.67 ms (process scan
29.97 ms), build + encode + spool 4.31 ms, send 2.56 ms, all sources 258.6 MiB and 1.77 %
(17.75 ms per batch, ratio 0.99), without eBPF 143.1 MiB and 1.75 % (17.50 ms, ratio 1.09):
polars was still loaded, by the CLI's other command groups, not by the collector."""

READING = """Reading the figures. The daemon's CPU per interval is the facade's sample (the
built-in sources), the batch build and encode (JSON through pydantic-core, gzipped by the
transport; Arrow only with `transport.encoding = "arrow"`), the HTTP send, the spool's durable
cursor write after each acknowledgement, and the process scan every 15 s (shown as the full
snapshot above, divided over its interval). The CPU targets are stated per sample; the whole
daemon per batch is compared with node_exporter per scrape because both are what one interval
of monitoring costs the host, but they do not do the same work: node_exporter serves about a
thousand exposition lines on request, the collector reads kernel interfaces, keeps a
crash-safe spool and pushes acknowledged batches. Memory is dominated by libraries, not data:
the collector's own entry point loads pydantic, httpx and the collector (no pyarrow, no
polars); so does `sreagent collect` since session 6 (the CLI registers the `collect` command
alone for it; before, it registered every command group first, and some of them import
polars and pyarrow, hence the larger RSS in earlier figures); with eBPF on, BCC maps LLVM. PSS is lower
than RSS because shared libraries are shared with other Python processes."""


def write_section(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    start = doc.find(SECTION)
    if start >= 0:
        # Earlier sessions' A/B sub-sections are records of runs this invocation does not
        # repeat: keep every "### Session N" sub-section the new text does not replace.
        end = doc.find("\n## ", start + len(SECTION))
        old = doc[start : end if end >= 0 else len(doc)]
        for part in old.split("\n### ")[1:]:
            heading = part.split("\n", 1)[0]
            if heading.startswith("Session ") and f"\n### {heading}" not in text:
                text = text.rstrip("\n") + "\n\n### " + part.rstrip("\n") + "\n"
    if start < 0:
        doc = doc.rstrip("\n") + "\n\n" + text
    else:
        end = doc.find("\n## ", start + len(SECTION))
        rest = doc[end + 1 :] if end >= 0 else ""
        doc = doc[:start] + text.rstrip("\n") + ("\n\n" + rest if rest else "\n")
    DOC.write_text(doc.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json-only", action="store_true", help="print the figures as JSON")
    parser.add_argument("--before", help="another checkout to measure first, side by side")
    args = parser.parse_args()
    before: dict[str, Any] | None = None
    load_start = os.getloadavg()
    if args.before:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--json-only", "--no-write"]
        cmd += ["--seconds", str(args.seconds), "--warmup", str(args.warmup)]
        cmd += ["--samples", str(args.samples)]
        got = subprocess.run(
            cmd,
            env={**os.environ, "PYTHONPATH": args.before},
            cwd=args.before,
            capture_output=True,
            text=True,
            check=True,
        )
        before = json.loads(got.stdout)
    inproc = measure_in_process(args.samples)
    inproc["send_cpu_median_s"] = send_cost(args.samples)
    inproc["import_rss_bytes"] = import_rss()
    variants = {
        "all sources": side_by_side(args.seconds, args.warmup),
        "without eBPF": side_by_side(args.seconds, args.warmup, disabled=("ebpf",)),
        "without eBPF, `sreagent collect`": side_by_side(
            args.seconds, args.warmup, disabled=("ebpf",), entry=FULL_CLI
        ),
    }
    import sreagent

    inproc["tree"] = str(Path(sreagent.__file__).resolve().parent.parent)
    if args.json_only:
        print(json.dumps({"in_process": inproc, "side_by_side": variants}, default=str))
        return
    text = render(inproc, variants)
    if before is not None:
        text = text.rstrip("\n") + "\n\n" + render_ab(before, inproc, variants, args, load_start)
    print(text)
    print(json.dumps({"in_process": inproc, "side_by_side": variants}, indent=2, default=str))
    if not args.no_write:
        write_section(text)


def render_ab(
    before: dict[str, Any],
    inproc: dict[str, Any],
    variants: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    load_start: tuple[float, float, float],
) -> str:
    """The "### Session 5" sub-section: the before tree's figures next to this checkout's."""
    b_in, b_var = before["in_process"], before["side_by_side"]
    if Path(b_in["tree"]) != Path(args.before).resolve():
        raise SystemExit(f"the before run imported sreagent from {b_in['tree']}")
    head = subprocess.run(
        ["git", "-C", args.before, "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    load_end = os.getloadavg()

    def per_interval(figures: dict[str, Any]) -> float:
        return float(
            figures["fast_sample_cpu_median_s"]
            + figures["batch_build_encode_spool_cpu_median_s_json"]
        )

    rows: list[tuple[str, str, str]] = [
        (
            "fast sample (facade, thread CPU, median / p90), target <= 2 ms",
            f"{ms(b_in['fast_sample_cpu_median_s'])} / {ms(b_in['fast_sample_cpu_p90_s'])}",
            f"{ms(inproc['fast_sample_cpu_median_s'])} / {ms(inproc['fast_sample_cpu_p90_s'])}",
        ),
        (
            "batch build + JSON encode + gzip + spool append, per interval (default)",
            ms(b_in["batch_build_encode_spool_cpu_median_s_json"]),
            ms(inproc["batch_build_encode_spool_cpu_median_s_json"]),
        ),
        (
            "fast sample + batch build/encode/spool (the two medians added)",
            ms(per_interval(b_in)),
            ms(per_interval(inproc)),
        ),
        (
            'batch build + Arrow encode + spool append (`encoding = "arrow"`)',
            ms(b_in["batch_build_encode_spool_cpu_median_s_arrow"]),
            ms(inproc["batch_build_encode_spool_cpu_median_s_arrow"]),
        ),
        (
            "full snapshot with processes, target <= 20 ms",
            ms(b_in["full_snapshot_cpu_median_s"]),
            ms(inproc["full_snapshot_cpu_median_s"]),
        ),
        (
            "  of which the process scan",
            ms(b_in["process_scan_cpu_median_s"]),
            ms(inproc["process_scan_cpu_median_s"]),
        ),
    ]
    for name, after in variants.items():
        was = b_var.get(name)
        if was is None:
            continue
        rows += [
            (
                f"daemon ({name}): CPU at a 1 s interval, target <= 1 % of a core",
                f"{was['collector_core_share'] * 100:.2f} %",
                f"{after['collector_core_share'] * 100:.2f} %",
            ),
            (
                f"daemon ({name}): CPU per batch",
                ms(was["collector_cpu_per_batch_s"]),
                ms(after["collector_cpu_per_batch_s"]),
            ),
            (
                f"daemon ({name}): steady RSS (PSS)",
                f"{was['collector_rss_bytes'] / MIB:.1f} MiB ({was['collector_pss_bytes'] / MIB:.1f})",
                f"{after['collector_rss_bytes'] / MIB:.1f} MiB "
                f"({after['collector_pss_bytes'] / MIB:.1f})",
            ),
            (
                f"node_exporter beside the daemon ({name}): CPU per scrape",
                ms(was["exporter_cpu_per_scrape_s"]),
                ms(after["exporter_cpu_per_scrape_s"]),
            ),
        ]
    lines = [
        "### Session 5: before and after, one run",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `bench/collector.py --before` "
        f"ran the whole benchmark on commit {head} (a `git worktree`, its daemon included), "
        "then on this checkout, one after the other in the same invocation (about four "
        f"minutes each). Load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at "
        "the end (shared machine).",
        "",
        "| figure | before | after |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {b} | {a} |" for label, b, a in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
