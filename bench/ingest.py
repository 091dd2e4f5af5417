"""Ingest benchmark: N simulated collectors over loopback HTTP against a real `sreagent serve`.

End to end through validation, dedupe, the journal (WAL + Parquet) and hot state. Reports
samples/s accepted, acknowledgement latency p50/p99 (client side), the controller's CPU time
per accepted batch (a figure that does not depend on what other processes leave it), its peak RSS
(and RSS over time, to see whether memory stays flat), and, in the same run, the time plain
pyarrow takes to write the same sample rows to one Parquet file beside the time the journal
spent writing them.

    .venv/bin/python bench/ingest.py --collectors 200 --rate 1 --duration 60
    .venv/bin/python bench/ingest.py --collectors 8 --rate 0 --duration 30   # flat out

The simulated collectors run in this process and compete with the controller for the same
cores, so they are kept lean: every body is encoded before the clock starts, and each
collector writes raw HTTP/1.1 requests on its own keep-alive connection (asyncio streams on
uvloop) and reads the response by its Content-Length. Ack latency is from the write to the
last byte of the response. The client's own CPU per request is reported beside the
controller's.

``--tree DIR`` runs the controller (and the in-process journal comparison) from another
checkout of the code, e.g. ``git archive <commit> | tar -x -C DIR``, so a before/after pair
runs with one script. After the HTTP run, a separate process measures journal writing
against plain pyarrow on the same rows, best of 3 CPU times: one flush's worth of batches
from every collector through ``JournalWriter`` against ``pyarrow.parquet.write_table`` of the
same four tables, already built (``--journal-only`` runs just that). ``--stages`` measures,
in-process, the CPU per batch of decode + validate, digest, hot state and receipts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]


def _tree_argument() -> Path:
    """``--tree`` is read before sreagent is imported: the code under test comes from it."""
    for i, arg in enumerate(sys.argv):
        if arg == "--tree" and i + 1 < len(sys.argv):
            return Path(sys.argv[i + 1]).resolve()
        if arg.startswith("--tree="):
            return Path(arg.split("=", 1)[1]).resolve()
    return REPO


TREE = _tree_argument()
sys.path.insert(0, str(TREE))

from sreagent.atomic import PARQUET_OPTIONS  # noqa: E402
from sreagent.controller.settings import hash_token  # noqa: E402
from sreagent.evidence import Journal, JournalWriter  # noqa: E402
from sreagent.evidence.tables import frames_to_tables  # noqa: E402
from sreagent.telemetry import ARROW_CONTENT_TYPE, Batch, Sample, decode_batch  # noqa: E402
from sreagent.telemetry.arrow import batch_to_table  # noqa: E402

TOKEN = "bench-token"
T0 = 1_767_225_600_000_000_000


class BodyMaker:
    """Encodes batches fast: one template table per collector; only seq/time change."""

    def __init__(self, collector: int, samples: int):
        metrics = ["cpu_utilisation_ratio", "memory_used_bytes", "disk_await_seconds",
                   "net_rx_bytes_per_second", "psi_cpu_some_ratio"]
        batch = Batch(
            collector_id=f"bench-{collector}", host=f"node-{collector:04d}",
            producer_epoch="e1", seq=1, sent_at_ns=T0,
            samples=[Sample(ts_ns=T0 - i, metric=metrics[i % len(metrics)],
                            entity=f"cpu/{i // len(metrics) % 64}", value=float(i % 97) / 100)
                     for i in range(samples)],
        )
        self.table = batch_to_table(batch)
        self.seq_index = self.table.schema.get_field_index("seq")
        self.sent_index = self.table.schema.get_field_index("sent_at_ns")
        self.options = ipc.IpcWriteOptions(compression="zstd")

    def body(self, seq: int) -> bytes:
        table = self.table.set_column(self.seq_index, "seq", pa.array([seq], pa.int64()))
        table = table.set_column(self.sent_index, "sent_at_ns",
                                 pa.array([T0 + seq * 10**9], pa.int64()))
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, table.schema, options=self.options) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()


class Connection:
    """One collector's keep-alive HTTP/1.1 connection on raw asyncio streams.

    The request head is built once; a request is one ``write`` of head + pre-encoded body and
    the response is read by its ``Content-Length``. Much cheaper than a general HTTP client,
    so the simulated collectors leave the cores to the controller.
    """

    def __init__(self, host: str, port: int, path: str):
        self.host, self.port, self.path = host, port, path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {TOKEN}\r\nContent-Type: {ARROW_CONTENT_TYPE}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readuntil(b"\r\n")
        length, close = 0, False
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await self.reader.readexactly(length)
        if close:
            self.writer.close()
        return int(status_line.split()[1])


async def collector(index: int, url: str, bodies: list[bytes], rate: float, stop_at: float,
                    latencies: list[float], counts: dict[str, int],
                    sent_at: list[float] | None = None) -> None:
    host, port = url.removeprefix("http://").split(":")
    connection = Connection(host, int(port), "/api/v1/ingest/batches")
    interval = 1.0 / rate if rate > 0 else 0.0
    # Real collectors' intervals are not aligned: spread the phases over one interval.
    next_at = time.monotonic() + (np.random.default_rng(index).random() * interval
                                  if interval else 0.0)
    if interval:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    for data in bodies:
        if time.monotonic() >= stop_at:
            break
        started = time.perf_counter()
        try:
            status = await connection.post(data)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = -1
            connection.writer = None
        latencies.append(time.perf_counter() - started)
        if sent_at is not None:
            sent_at.append(started)
        counts[str(status)] = counts.get(str(status), 0) + 1
        if interval:
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def family(proc: psutil.Process) -> list[psutil.Process]:
    """The controller and its child processes (decode workers)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def family_cpu_s(proc: psutil.Process) -> float:
    """User + system CPU seconds of the controller and its live children."""
    total = 0.0
    for p in family(proc):
        with contextlib.suppress(psutil.Error):
            total += sum(p.cpu_times()[:2])
    return total


def family_rss(proc: psutil.Process) -> int:
    """RSS of the controller plus its children (decode workers), bytes."""
    return sum(p.memory_info().rss for p in family(proc))


def watch_rss(pid: int, samples: list[tuple[float, int]], stop: threading.Event) -> None:
    proc = psutil.Process(pid)
    started = time.monotonic()
    while not stop.is_set():
        try:
            samples.append((time.monotonic() - started, family_rss(proc)))
        except psutil.Error:
            return
        stop.wait(0.5)


def launch_controller(config: Path, port: int,
                      extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`sreagent serve` of the code under test (``--tree``) in its own session."""
    return subprocess.Popen(
        [sys.executable, "-m", "sreagent", "serve", "--config", str(config), "--port", str(port),
         "--log-level", "warning"], cwd=TREE, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(TREE), **(extra_env or {})})


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Poll /readyz until the controller answers; stop if it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("controller did not start")
        time.sleep(0.2)


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def prebuild(args: argparse.Namespace) -> list[list[bytes]]:
    """Every body the run can send, encoded before the clock starts (the client's CPU then
    goes to sending and receiving only). Flat out (rate 0), ``--flat-out-per-s`` batches per
    second per collector are prepared; a collector that runs out stops early."""
    per_s = args.rate if args.rate > 0 else args.flat_out_per_s
    count = int(per_s * args.duration) + 2
    makers = [BodyMaker(c, args.samples) for c in range(args.collectors)]
    return [[m.body(seq) for seq in range(1, count + 1)] for m in makers]


async def drive(args: argparse.Namespace, url: str,
                bodies: list[list[bytes]]
                ) -> tuple[list[float], dict[str, int], float, list[float]]:
    latencies: list[float] = []
    counts: dict[str, int] = {}
    started = time.monotonic()
    stop_at = started + args.duration
    sent_at: list[float] = []
    origin = time.perf_counter()
    await asyncio.gather(*(collector(i, url, b, args.rate, stop_at, latencies, counts, sent_at)
                           for i, b in enumerate(bodies)))
    elapsed = time.monotonic() - started
    return latencies, counts, elapsed, [t - origin for t in sent_at]


def _run(coroutine: Any) -> Any:
    """``asyncio.run`` on uvloop when it is installed (cheaper per request for the client)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def journal_vs_plain(collectors: int, batches_each: int, samples: int) -> dict[str, float]:
    """CPU seconds (best of 3) to write the same batches through ``JournalWriter`` (append +
    flush, i.e. building the tables, ordering, encoding, renaming, one syncfs) and through
    plain ``pq.write_table`` of the four tables, already built, one file each."""
    makers = [BodyMaker(c, samples) for c in range(collectors)]
    frames = [decode_batch(m.body(seq), ARROW_CONTENT_TYPE)
              for seq in range(1, batches_each + 1) for m in makers]
    tables = frames_to_tables(frames)
    journal_s, plain_s = [], []
    with tempfile.TemporaryDirectory(prefix="sreagent-bench-journal-") as tmp:
        for round_ in range(3):
            writer = JournalWriter(Path(tmp) / f"journal-{round_}", writer_id="bench")
            started = time.process_time()
            for frame in frames:
                writer.append(frame, "0" * 64)
            files = writer.flush()
            journal_s.append(time.process_time() - started)
            started = time.process_time()
            for name, table in tables.items():
                pq.write_table(table, Path(tmp) / f"plain-{round_}-{name}.parquet",
                               **PARQUET_OPTIONS)
            plain_s.append(time.process_time() - started)
    return {"journal_rows": sum(t.num_rows for t in tables.values()),
            "journal_files_per_flush": len(files),
            "journal_cpu_s": round(min(journal_s), 3), "plain_cpu_s": round(min(plain_s), 3),
            "journal_over_plain": round(min(journal_s) / min(plain_s), 2)}


def stages(hosts: int, batches_each: int, samples: int, group: int) -> dict[str, float]:
    """In-process CPU per batch (best of 3, ``time.process_time``) of the ingest stages, in
    the code of ``--tree``: decode + validate, digest, hot state append, and the receipts of
    a WAL group of ``group`` batches (lookup + insert, SQLite) divided by ``group``."""
    from sreagent.controller.hotstate import HotState
    from sreagent.controller.store import RunStore
    from sreagent.telemetry import batch_digest

    makers = [BodyMaker(c, samples) for c in range(hosts)]
    bodies = [m.body(seq) for seq in range(1, batches_each + 1) for m in makers]
    frames = [decode_batch(b, ARROW_CONTENT_TYPE) for b in bodies]
    digests = [batch_digest(f) for f in frames]

    def best(run: Any, count: int) -> float:
        times = []
        for _ in range(3):
            started = time.process_time()
            run()
            times.append(time.process_time() - started)
        return round(min(times) * 1000 / count, 3)

    def hot() -> None:
        state = HotState(max_hosts=10_000, max_series_per_host=10_000,
                         samples_per_series=120, events_per_host=100)
        for frame in frames:
            state.append(frame)

    with tempfile.TemporaryDirectory(prefix="sreagent-bench-stages-") as tmp:
        store = RunStore(f"sqlite:///{tmp}/store.db")
        store.migrate()
        rounds = [0]

        def receipts() -> None:
            rounds[0] += 1
            for start in range(0, len(frames), group):
                chunk = frames[start:start + group]
                ids = [f"{rounds[0]}-{f.batch_id}" for f in chunk]
                store.receipt_digests(ids)
                store.insert_receipts([
                    {"batch_id": i, "collector_id": f.header.collector_id,
                     "producer_epoch": f.header.producer_epoch, "seq": f.header.seq,
                     "host": f.header.host, "digest": d, "samples": f.samples.num_rows,
                     "accepted_at_ns": 1} for i, f, d in zip(ids, chunk, digests, strict=False)])

        receipt_ms = best(receipts, len(frames))
        store.close()
    return {
        "batches": len(frames),
        "decode_validate_ms": best(lambda: [decode_batch(b, ARROW_CONTENT_TYPE)
                                            for b in bodies], len(bodies)),
        "digest_ms": best(lambda: [batch_digest(f) for f in frames], len(frames)),
        "hot_state_append_ms": best(hot, len(frames)),
        f"receipts_per_batch_ms_groups_of_{group}": receipt_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collectors", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1.0,
                        help="batches per second per collector (0: as fast as possible)")
    parser.add_argument("--samples", type=int, default=500, help="samples per batch")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--ring", type=int, default=720,
                        help="hot_state.samples_per_series (smaller rings fill sooner, so a "
                             "memory plateau shows in a shorter run)")
    parser.add_argument("--flat-out-per-s", type=float, default=40.0,
                        help="with --rate 0, bodies prepared per collector and second")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--tree", type=Path, default=REPO,
                        help="checkout whose controller code runs (default: this one)")
    parser.add_argument("--decode-workers", type=int, default=None,
                        help="the controller's ingest.decode_workers (default: its own default)")
    parser.add_argument("--journal-only", action="store_true",
                        help="only the in-process journal vs plain pyarrow comparison")
    parser.add_argument("--stages", action="store_true",
                        help="only the in-process CPU per batch of each ingest stage "
                             "(--collectors hosts x --journal-batches batches)")
    parser.add_argument("--group", type=int, default=8,
                        help="WAL group size for the receipts stage of --stages")
    parser.add_argument("--journal-batches", type=int, default=10,
                        help="batches per collector in that comparison (one flush's worth)")
    args = parser.parse_args()
    if args.stages:
        print(json.dumps(stages(args.collectors, args.journal_batches, args.samples,
                                args.group)))
        return
    if args.journal_only:
        print(json.dumps(journal_vs_plain(args.collectors, args.journal_batches, args.samples)))
        return

    tmp = Path(tempfile.mkdtemp(prefix="sreagent-bench-"))
    config = tmp / "controller.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp / "data"),
        "auth": {"tokens": [{"name": "bench", "sha256": hash_token(TOKEN),
                             "scopes": ["admin"]}]},
        "hot_state": {"rebuild_window_s": 0, "samples_per_series": args.ring},
        "journal": {"max_pending_batches": 100_000},
        **({"ingest": {"decode_workers": args.decode_workers}}
           if args.decode_workers is not None else {}),
    }))
    port = 18000 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    server = launch_controller(config, port)
    try:
        wait_ready(url, server)
        rss: list[tuple[float, int]] = []
        stop = threading.Event()
        watcher = threading.Thread(target=watch_rss, args=(server.pid, rss, stop), daemon=True)
        watcher.start()
        server_proc = psutil.Process(server.pid)
        bodies = prebuild(args)
        cpu_before = family_cpu_s(server_proc)
        main_before = sum(server_proc.cpu_times()[:2])
        client_before = time.process_time()
        latencies, counts, elapsed, sent_at = _run(drive(args, url, bodies))
        client_cpu_s = time.process_time() - client_before
        server_cpu_s = family_cpu_s(server_proc) - cpu_before
        main_cpu_s = sum(server_proc.cpu_times()[:2]) - main_before
        del bodies
        stop.set()
        watcher.join()
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
        accepted_samples = metric(metrics, "sreagent_ingest_samples_total")
        # Make the journal write everything it holds, then compare with plain pyarrow.
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
        final = None
    finally:
        if server.poll() is None:
            server.kill()
    journal_seconds = metric(metrics, "sreagent_journal_parquet_seconds_total")
    journal_cpu = metric(metrics, "sreagent_journal_parquet_cpu_seconds_total")  # 0: old tree
    journal_rows = metric(metrics, "sreagent_journal_parquet_rows_total")
    journal = Journal(tmp / "data" / "journal")
    samples = journal.read("samples")
    started = time.perf_counter()
    pq.write_table(samples, tmp / "plain.parquet", **PARQUET_OPTIONS)
    plain_seconds = time.perf_counter() - started
    comparison = json.loads(subprocess.run(
        [sys.executable, __file__, "--journal-only", "--tree", str(TREE),
         "--collectors", str(args.collectors), "--samples", str(args.samples),
         "--journal-batches", str(args.journal_batches)],
        check=True, capture_output=True, text=True).stdout)
    lat = np.asarray(latencies) * 1000
    sent = np.asarray(sent_at)
    rss_mb = [r / 2**20 for _, r in rss]
    third = max(1, len(rss_mb) // 3)
    result = {
        "collectors": args.collectors, "rate_per_collector": args.rate,
        "samples_per_batch": args.samples, "duration_s": round(elapsed, 1),
        "responses": counts,
        "samples_per_s": round(accepted_samples / elapsed),
        "ack_ms_p50": round(float(np.percentile(lat, 50)), 1),
        "ack_ms_p99": round(float(np.percentile(lat, 99)), 1),
        # p99 of the requests sent in each 5-second window: a start-up backlog, periodic
        # stalls (flushes, compaction) and steady queueing look different here.
        "ack_ms_p99_by_5s": [round(float(np.percentile(lat[(sent >= w) & (sent < w + 5)], 99)))
                             for w in range(0, int(sent.max()) + 1, 5)
                             if ((sent >= w) & (sent < w + 5)).any()],
        # CPU seconds the controller spent per accepted batch (user + system, all threads):
        # unlike samples/s this does not depend on how much CPU other processes left it.
        "controller_cpu_ms_per_batch": round(server_cpu_s * 1000 / max(1, counts.get("200", 0)),
                                             2),
        # ... of which the controller's own process (the rest: its decode workers).
        "controller_main_process_cpu_ms_per_batch": round(
            main_cpu_s * 1000 / max(1, counts.get("200", 0)), 2),
        "samples_per_controller_cpu_s": round(accepted_samples / max(server_cpu_s, 1e-9)),
        # The simulated collectors' own CPU (this process, all threads) on the same cores.
        "client_cpu_ms_per_batch": round(client_cpu_s * 1000 / max(1, len(latencies)), 2),
        "client_cpu_share_of_elapsed": round(client_cpu_s / elapsed, 2),
        "peak_rss_mb": round(max(rss_mb), 1),
        "rss_mb_first_third_mean": round(float(np.mean(rss_mb[:third])), 1),
        "rss_mb_last_third_mean": round(float(np.mean(rss_mb[-third:])), 1),
        "rss_mb_by_minute": [round(max(r for t, r in zip([t for t, _ in rss], rss_mb, strict=True)
                                       if m * 60 <= t < (m + 1) * 60), 1)
                             for m in range(int(rss[-1][0] // 60) + 1)
                             if any(m * 60 <= t < (m + 1) * 60 for t, _ in rss)],
        "journal_parquet_s": round(journal_seconds, 2),
        "journal_parquet_cpu_s": round(journal_cpu, 2),
        "journal_parquet_rows_before_shutdown": int(journal_rows),
        "plain_pyarrow_s_same_sample_rows": round(plain_seconds, 2),
        "sample_rows_in_journal": samples.num_rows,
        "journal_files": sum(len(journal.files(t)) for t in ("batches", "samples", "events",
                                                            "processes")),
        "same_rows_in_process": comparison,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    del final
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:40} {value}")


if __name__ == "__main__":
    main()
