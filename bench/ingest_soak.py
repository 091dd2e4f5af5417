"""Memory soak of the controller: a long ingest run at a rate it sustains, RSS every second.

    .venv/bin/python bench/ingest_soak.py                       # 10 min, 20 x 1 batch/s
    .venv/bin/python bench/ingest_soak.py --duration 120 --tracemalloc   # which sites grow
    .venv/bin/python bench/ingest_soak.py --env MALLOC_ARENA_MAX=2   # an experiment
    .venv/bin/python bench/ingest_soak.py --tree /tmp/before         # another checkout

A real ``sreagent serve`` subprocess; N simulated collectors (asyncio + httpx, this process)
each post one 500-sample Arrow batch per interval over loopback HTTP, with timestamps that
advance like a real collector's. The controller runs with ``debug.memory_profile_dir`` set
(docs/controller.md, Memory), so it writes its own RSS / Arrow pool / glibc heap figures
every second (with ``--tracemalloc``, Python's allocation growth every minute) and the
journal's flush and compaction times; this script samples the RSS of the controller and its decode workers from outside as well
(psutil, every second), then reports:

* per-minute peak RSS (minute 1 = the first 60 s) and whether memory is **flat** by the
  definition in docs/benchmarks.md ("Session 4: memory"): over minutes 3 to the end (after
  the rings have filled), every minute's peak within +-5 % of their median, and the slope of
  a least-squares line through the per-second RSS samples under 1 MB/min;
* ack latency p50/p99 overall and per minute (a soak is only meaningful if requests do not
  queue: p99 well under a second), responses by status and client errors by exception type
  with the minute they happened in;
* the journal's flushes and compactions per minute, and what happened within +-5 s of each
  minute's RSS peak;
* with ``--tracemalloc``, the top growing allocation sites of the last snapshot; the load average.

tracemalloc is off by default because the figure to judge by is taken without it: its own
bookkeeping (a trace per live Python block) grows with every object the controller keeps
and would be measured as the controller's memory, and it doubles the CPU per batch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sreagent.controller.settings import hash_token  # noqa: E402
from sreagent.telemetry import ARROW_CONTENT_TYPE  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import (  # noqa: E402  (the ingest bench's collector, controller start, CPU and RSS)
    BodyMaker,
    family_cpu_s,
    family_rss,
    launch_controller,
    wait_ready,
)

TOKEN = "soak-token"
MB = 2**20
FLAT_BAND = 0.05
FLAT_SLOPE_MB_PER_MIN = 1.0
WARMUP_MINUTES = 2


async def collector(client: httpx.AsyncClient, url: str, maker: BodyMaker, rate: float,
                    started: float, stop_at: float, log: list[tuple[float, float, str]]) -> None:
    seq = 0
    next_at = time.monotonic()
    while time.monotonic() < stop_at:
        seq += 1
        data = maker.body(seq)
        sent = time.perf_counter()
        try:
            response = await client.post(url, content=data, headers={
                "Content-Type": ARROW_CONTENT_TYPE, "Authorization": f"Bearer {TOKEN}"})
            outcome = str(response.status_code)
        except httpx.HTTPError as err:
            outcome = type(err).__name__
        log.append((time.monotonic() - started, time.perf_counter() - sent, outcome))
        next_at += 1.0 / rate
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def drive(args: argparse.Namespace, url: str, started: float
                ) -> list[tuple[float, float, str]]:
    makers = [BodyMaker(c, args.samples) for c in range(args.collectors)]
    log: list[tuple[float, float, str]] = []
    limits = httpx.Limits(max_connections=args.collectors,
                          max_keepalive_connections=args.collectors)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(collector(client, f"{url}/api/v1/ingest/batches", m, args.rate,
                                         started, started + args.duration, log)
                               for m in makers))
    return log


def watch(pid: int, started: float, rss: list[tuple[float, int]], load: list[float],
          stop: threading.Event) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        try:
            rss.append((time.monotonic() - started, family_rss(proc)))
        except psutil.Error:
            return
        if len(rss) % 60 == 1:
            load.append(os.getloadavg()[0])
        stop.wait(1.0)


def flatness(rss: list[tuple[float, int]]) -> dict[str, Any]:
    """Per-minute peaks and the flatness verdict (docs/benchmarks.md, Session 4: memory)."""
    t = np.array([s for s, _ in rss])
    mb = np.array([r for _, r in rss]) / MB
    minutes = int(t[-1] // 60)  # whole minutes only
    peaks = [float(mb[(t >= m * 60) & (t < (m + 1) * 60)].max()) for m in range(minutes)]
    judged = peaks[WARMUP_MINUTES:]
    result: dict[str, Any] = {"rss_mb_peak_by_minute": [round(p, 1) for p in peaks]}
    if len(judged) < 3:
        result["flat"] = None
        return result
    median = float(np.median(judged))
    window = (t >= WARMUP_MINUTES * 60) & (t < minutes * 60)
    slope = float(np.polyfit(t[window] / 60, mb[window], 1)[0])
    peak_slope = float(np.polyfit(np.arange(len(judged)), judged, 1)[0])
    worst = max(abs(p - median) / median for p in judged)
    result.update({
        "judged_minutes": f"{WARMUP_MINUTES + 1}-{minutes}",
        "median_peak_mb": round(median, 1),
        "worst_deviation_pct": round(100 * worst, 2),
        "slope_mb_per_min_per_second_samples": round(slope, 2),
        "slope_mb_per_min_minute_peaks": round(peak_slope, 2),
        "flat": bool(worst <= FLAT_BAND and slope < FLAT_SLOPE_MB_PER_MIN),
    })
    return result


def latency_figures(log: list[tuple[float, float, str]], minutes: int) -> dict[str, Any]:
    ok = np.array([lat for _, lat, outcome in log if outcome == "200"]) * 1000
    outcomes: dict[str, int] = {}
    errors: dict[str, list[int]] = {}
    for at, _, outcome in log:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if not outcome.isdigit():
            errors.setdefault(outcome, []).append(int(at // 60) + 1)
    per_minute = []
    for m in range(minutes):
        lat = [lat * 1000 for at, lat, o in log if o == "200" and m * 60 <= at < (m + 1) * 60]
        per_minute.append(round(float(np.percentile(lat, 99)), 1) if lat else None)
    return {"requests": len(log), "responses": outcomes,
            "client_errors_minute": {k: sorted(v) for k, v in errors.items()},
            "ack_ms_p50": round(float(np.percentile(ok, 50)), 1) if len(ok) else None,
            "ack_ms_p99": round(float(np.percentile(ok, 99)), 1) if len(ok) else None,
            "ack_ms_max": round(float(ok.max()), 1) if len(ok) else None,
            "ack_ms_p99_by_minute": per_minute}


def in_flight(log: list[tuple[float, float, str]], at: float) -> int:
    """Requests sent and not yet answered at ``at`` (client side)."""
    return sum(1 for done, latency, _ in log if done - latency <= at < done)


def journal_figures(profile: Path, start_wall: float, rss: list[tuple[float, int]],
                    minutes: int, log: list[tuple[float, float, str]]) -> dict[str, Any]:
    path = profile / "journal-activity.json"
    activity = json.loads(path.read_text()) if path.exists() else []
    for item in activity:
        item["t"] = round(item["wall"] - start_wall, 1)
    by_minute: list[dict[str, int]] = [{} for _ in range(minutes)]
    for item in activity:
        m = int(item["t"] // 60)
        if 0 <= m < minutes:
            by_minute[m][item["kind"]] = by_minute[m].get(item["kind"], 0) + 1
    # what happened around each minute's RSS peak
    around_peaks = []
    for m in range(minutes):
        in_minute = [(t, r) for t, r in rss if m * 60 <= t < (m + 1) * 60]
        t_peak, r_peak = max(in_minute, key=lambda s: s[1])
        near = [f"{i['kind']}@{i['t']}s({i['seconds']}s,{i.get('rows')} rows)"
                for i in activity if t_peak - 35 <= i["t"] <= t_peak + 5]
        around_peaks.append({"minute": m + 1, "t": round(t_peak, 1),
                             "rss_mb": round(r_peak / MB, 1),
                             "requests_in_flight": in_flight(log, t_peak),
                             "journal_within_-35..+5s": near})
    flushes = [i for i in activity if i["kind"] == "flush"]
    return {"flushes": len(flushes), "compactions": sum(i["kind"] == "compact"
                                                        for i in activity),
            "flush_s_max": max((i["seconds"] for i in flushes), default=None),
            "flush_rows_max": max((i["rows"] for i in flushes), default=None),
            "journal_by_minute": by_minute, "rss_peaks": around_peaks,
            "compactions_at": [(i["t"], i.get("table"), i.get("files"), i.get("rows"),
                                i["seconds"]) for i in activity if i["kind"] == "compact"]}


def inside_figures(profile: Path, minutes: int) -> dict[str, Any]:
    """The controller's own per-minute peaks: Arrow pool, glibc heap, traced Python bytes."""
    path = profile / "samples.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def peak(key: Any) -> list[float]:
        out = []
        for m in range(minutes):
            values = [key(r) for r in rows if m * 60 <= r["t"] < (m + 1) * 60]
            out.append(round(max(values) / MB, 1) if values else float("nan"))
        return out

    figures = {
        "anon_mb_peak_by_minute": peak(lambda r: r["anon"]),
        "file_mb_peak_by_minute": peak(lambda r: r["file"]),
        "arrow_pool_mb_peak_by_minute": peak(lambda r: r["arrow_allocated"]),
        "python_traced_mb_peak_by_minute": peak(lambda r: r["traced"]),
        "threads_max": max(r["threads"] for r in rows),
    }
    if rows and rows[0]["malloc"]:
        figures["malloc_in_use_mb_peak_by_minute"] = peak(lambda r: r["malloc"]["in_use"])
        figures["malloc_free_held_mb_peak_by_minute"] = peak(lambda r: r["malloc"]["free_held"])
        figures["malloc_mmapped_mb_peak_by_minute"] = peak(lambda r: r["malloc"]["mmapped"])
    snapshots = sorted(profile.glob("snapshot-*.json"))
    if snapshots:
        last = json.loads(snapshots[-1].read_text())
        figures["tracemalloc_last_snapshot"] = last["snapshot"]
        figures["top_growth_since_baseline"] = [
            f"{g['site']} {g['size_diff'] / 1024:+.0f} KiB ({g['count_diff']:+d} blocks)"
            for g in last["top_growth"][:10]]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collectors", type=int, default=20)
    parser.add_argument("--rate", type=float, default=1.0, help="batches/s per collector")
    parser.add_argument("--samples", type=int, default=500, help="samples per batch")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--ring", type=int, default=120, help="hot_state.samples_per_series")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace Python allocations (diagnosis; not the figure to judge "
                             "by: its bookkeeping is counted as the controller's memory)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the controller (experiments such as "
                             "MALLOC_ARENA_MAX=2)")
    parser.add_argument("--keep", type=Path, help="copy the controller's profile files here")
    parser.add_argument("--tree", type=Path, default=REPO,
                        help="the checkout whose controller is measured (as bench/ingest.py)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sreagent-soak-"))
    profile = tmp / "profile"
    config = tmp / "controller.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp / "data"),
        "auth": {"tokens": [{"name": "soak", "sha256": hash_token(TOKEN),
                             "scopes": ["admin"]}]},
        "hot_state": {"rebuild_window_s": 0, "samples_per_series": args.ring},
        "debug": {"memory_profile_dir": str(profile),
                  "memory_tracemalloc": args.tracemalloc},
    }))
    port = 19000 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    extra_env = dict(item.split("=", 1) for item in args.env)
    server = launch_controller(config, port, extra_env)
    load_start = os.getloadavg()
    try:
        wait_ready(url, server)
        proc = psutil.Process(server.pid)
        cpu_before = family_cpu_s(proc)
        rss: list[tuple[float, int]] = []
        load: list[float] = []
        stop = threading.Event()
        started, start_wall = time.monotonic(), time.time()
        watcher = threading.Thread(target=watch, args=(server.pid, started, rss, load, stop),
                                   daemon=True)
        watcher.start()
        log = asyncio.run(drive(args, url, started))
        cpu_s = family_cpu_s(proc) - cpu_before
        time.sleep(2.0)  # so the last whole minute has its last seconds sampled
        stop.set()
        watcher.join()
        server.send_signal(signal.SIGTERM)  # stop() writes the last journal activity
        server.wait(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
    minutes = min(int(rss[-1][0] // 60), int(args.duration // 60))
    accepted = sum(1 for _, _, o in log if o == "200")
    result: dict[str, Any] = {
        "tree": str(args.tree.resolve()),
        "collectors": args.collectors, "rate_per_collector": args.rate,
        "samples_per_batch": args.samples, "duration_s": args.duration, "ring": args.ring,
        "tracemalloc": args.tracemalloc, "controller_env": extra_env,
        "samples_per_s": round(accepted * args.samples / args.duration),
        "controller_cpu_ms_per_batch": round(cpu_s * 1000 / max(1, accepted), 2),
        **flatness(rss),
        **latency_figures(log, minutes),
        **journal_figures(profile, start_wall, rss, minutes, log),
        **inside_figures(profile, minutes),
        "load_average_start_each_minute_end": [round(load_start[0], 2)]
        + [round(x, 2) for x in load] + [round(os.getloadavg()[0], 2)],
    }
    if args.keep:
        shutil.copytree(profile, args.keep, dirs_exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:40} {value}")


if __name__ == "__main__":
    main()
