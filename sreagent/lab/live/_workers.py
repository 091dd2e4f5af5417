"""The workloads the live injectors start: small, self-bounded programs run as separate processes.

This file is executed by path (``python _workers.py KIND ...``), never imported by sreagent, so
a worker starts in tens of milliseconds without importing the package. Every worker stops on
its own at ``--seconds``: even if the process that started it is killed with SIGKILL, the fault
it makes is bounded in time (the cgroups or namespaces it ran in are removed by the next
start's sweep). ``--tag`` is only there so that ``ps`` shows which lab run a worker belongs to.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import selectors
import socket
import sys
import threading
import time

# SHA-256 over a buffer this large releases the GIL (CPython does so above 2 KiB), so N threads
# keep N CPUs busy from ONE process: the process the analysis should blame is unambiguous.
_SPIN_BUFFER = b"\xa5" * (1 << 20)


def spin(seconds: float, threads: int) -> None:
    deadline = time.monotonic() + seconds

    def loop() -> None:
        while time.monotonic() < deadline:
            hashlib.sha256(_SPIN_BUFFER).digest()

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(max(1, threads))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def steady(seconds: float, busy_ms: float, period_ms: float) -> None:
    """A well-behaved service: ``busy_ms`` of CPU work every ``period_ms``, sleeping the rest."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.monotonic()
        cpu_start = time.process_time()
        while (time.process_time() - cpu_start) * 1000 < busy_ms:
            hashlib.sha256(b"\x5a" * 4096).digest()
        rest = period_ms / 1000 - (time.monotonic() - start)
        if rest > 0:
            time.sleep(rest)


def leak(seconds: float, mib_per_s: float, chunk_mib: int) -> None:
    """Grow resident memory at a steady rate (pages written, so they are really resident)."""
    deadline = time.monotonic() + seconds
    held: list[bytearray] = []
    chunk = chunk_mib << 20
    interval = chunk_mib / mib_per_s
    while time.monotonic() < deadline:
        block = bytearray(chunk)
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page
        held.append(block)
        time.sleep(interval)


def fds(seconds: float, limit: int, fill: float, per_s: float, path: str) -> None:
    """Lower RLIMIT_NOFILE to ``limit`` and open files on ``path`` until ``fill`` of it is used."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    deadline = time.monotonic() + seconds
    target = int(limit * fill)
    held = []
    batch = max(1, int(per_s / 20))
    while time.monotonic() < deadline:
        if len(os.listdir("/proc/self/fd")) < target:
            for _ in range(batch):
                try:
                    held.append(os.open(path, os.O_RDONLY))
                except OSError:  # EMFILE: the limit is reached, which is the point
                    break
                if len(held) % 64 == 0 and len(os.listdir("/proc/self/fd")) >= target:
                    break
        time.sleep(0.05)


def receive(seconds: float, host: str, port: int) -> None:
    """Accept and drain every connection as data arrives (select), so the receiver never
    closes its window: a stalled reader makes the sender burst when it reopens, and the burst's
    tail drops would look like the injected loss."""
    deadline = time.monotonic() + seconds
    server = socket.create_server((host, port), backlog=8)
    server.setblocking(False)
    with selectors.DefaultSelector() as sel:
        sel.register(server, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is server:
                    try:
                        conn, _ = server.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(sock)
                    sock.close()


def send(seconds: float, host: str, port: int, kbit: float = 0.0) -> None:
    """TCP to the receiver, reconnecting if a connection breaks, until the deadline: bulk, or
    paced at ``kbit`` kbit/s (an application-limited stream: a healthy link below its rate
    carries it without queueing or loss, so any retransmit is the injected loss's)."""
    deadline = time.monotonic() + seconds
    # Paced: one MSS-sized write at a time, so the link never sees a burst to queue.
    payload = b"\x00" * (1400 if kbit > 0 else (1 << 16))
    gap = len(payload) * 8 / (kbit * 1000) if kbit > 0 else 0.0
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0) as conn:
                conn.settimeout(1.0)
                due = time.monotonic()
                while time.monotonic() < deadline:
                    if gap:
                        # Never catch up after a late wake-up (a loaded host): a burst would
                        # overflow the link's queue and retransmit with no loss injected.
                        due = max(due + gap, time.monotonic())
                        time.sleep(max(0.0, due - time.monotonic()))
                    try:
                        conn.sendall(payload)
                    except TimeoutError:
                        continue
        except OSError:
            time.sleep(0.1)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="sreagent-lab-worker")
    parser.add_argument("kind", choices=["spin", "steady", "leak", "fds", "receive", "send"])
    parser.add_argument("--tag", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--busy-ms", type=float, default=20.0)
    parser.add_argument("--period-ms", type=float, default=50.0)
    parser.add_argument("--mib-per-s", type=float, default=16.0)
    parser.add_argument("--chunk-mib", type=int, default=4)
    parser.add_argument("--limit", type=int, default=1024)
    parser.add_argument("--fill", type=float, default=0.97)
    parser.add_argument("--per-s", type=float, default=2000.0)
    parser.add_argument("--path", default="/dev/null")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--kbit", type=float, default=0.0)
    a = parser.parse_args(argv)
    if a.kind == "spin":
        spin(a.seconds, a.threads)
    elif a.kind == "steady":
        steady(a.seconds, a.busy_ms, a.period_ms)
    elif a.kind == "leak":
        leak(a.seconds, a.mib_per_s, a.chunk_mib)
    elif a.kind == "fds":
        fds(a.seconds, a.limit, a.fill, a.per_s, a.path)
    elif a.kind == "receive":
        receive(a.seconds, a.host, a.port)
    else:
        send(a.seconds, a.host, a.port, a.kbit)


if __name__ == "__main__":
    main(sys.argv[1:])
