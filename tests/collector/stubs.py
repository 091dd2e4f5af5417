"""Helpers shared by the collector's transport and daemon tests: a real ingest server process."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sreagent.collector.spool import Spool
from sreagent.collector.transport import BatchKey, SpooledBatch
from sreagent.telemetry import ARROW_CONTENT_TYPE, Batch, Sample, encode_batch

STUB = Path(__file__).with_name("controller_stub.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StubServer:
    proc: subprocess.Popen[str]
    port: int
    log: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def accepted_seqs(self) -> list[int]:
        return [r["seq"] for r in self.requests() if r.get("outcome") == "accepted"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


def start_stub(log: Path, *args: str, port: int = 0, scheme: str = "http") -> StubServer:
    proc = subprocess.Popen(
        [sys.executable, str(STUB), "--port", str(port), "--log", str(log), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening"):
        proc.kill()
        raise RuntimeError(f"stub server did not start: {line!r}")
    return StubServer(proc, int(line.split()[1]), log, scheme)


@contextlib.contextmanager
def stub_server(log: Path, *args: str, port: int = 0, scheme: str = "http") -> Iterator[StubServer]:
    server = start_stub(log, *args, port=port, scheme=scheme)
    try:
        yield server
    finally:
        server.stop()


def make_batch(seq: int, epoch: str = "e1", collector_id: str = "c1", value: float = 1.0) -> Batch:
    return Batch(
        collector_id=collector_id,
        host="test-host",
        producer_epoch=epoch,
        seq=seq,
        sent_at_ns=1_700_000_000_000_000_000 + seq,
        samples=[
            Sample(
                ts_ns=1_700_000_000_000_000_000 + seq,
                metric="load_average_1m",
                entity="host",
                value=value,
            )
        ],
    )


def spool_batch(spool: Spool, seq: int, epoch: str = "e1", value: float = 1.0) -> BatchKey:
    batch = make_batch(seq, epoch, value=value)
    key = BatchKey(batch.collector_id, batch.producer_epoch, batch.seq)
    spool.append(SpooledBatch(key, ARROW_CONTENT_TYPE, encode_batch(batch)).to_bytes())
    return key


def wait_until(condition: Any, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
