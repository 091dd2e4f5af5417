"""Batches, settings and a real uvicorn server for controller and API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sreagent.controller.settings import Settings, hash_token, load_settings
from sreagent.telemetry import Batch, Event, Sample, encode_batch

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
TOKENS = {"ingest": "tok-ingest", "read": "tok-read", "approve": "tok-approve",
          "admin": "tok-admin"}
REPO = Path(__file__).resolve().parents[2]


def token_config() -> list[dict[str, Any]]:
    return [{"name": f"{scope}-user", "sha256": hash_token(tok), "scopes": [scope]}
            for scope, tok in TOKENS.items()]


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp / "data",
        "auth": {"tokens": token_config()},
        "hot_state": {"rebuild_window_s": 0},
        "journal": {"compact_interval_s": 3600},
    }
    values.update(overrides)
    return load_settings(None, **values)


def make_batch(*, collector: str = "c1", host: str = "node-1", epoch: str = "e1", seq: int = 1,
               samples: int = 10, value: float = 0.5, metric: str = "cpu_utilisation_ratio",
               t0: int = T0, events: int = 0) -> Batch:
    return Batch(
        collector_id=collector, host=host, producer_epoch=epoch, seq=seq,
        sent_at_ns=t0 + seq * 10**9,
        samples=[Sample(ts_ns=t0 + seq * 10**9 - i, metric=metric, entity="host", value=value)
                 for i in range(samples)],
        events=[Event(ts_ns=t0 + seq * 10**9, kind="oom_kill", entity="process/1", source="kmsg",
                      severity="error") for _ in range(events)],
    )


def body(batch: Batch, content_type: str = "application/vnd.sreagent.batch.v1+arrow") -> bytes:
    return encode_batch(batch, content_type)


ARROW = {"Content-Type": "application/vnd.sreagent.batch.v1+arrow"}


def wait_for(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check()`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not hold within {timeout}s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(settings: Settings) -> Iterator[str]:
    """Run the app on uvicorn on a free loopback port in this process; yield its base URL."""
    from sreagent.api import create_app

    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_ready(url: str, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"controller exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not become ready")


def start_controller(config: Path, *, port: int, env: dict[str, str] | None = None,
                     log: Path | None = None) -> subprocess.Popen[bytes]:
    """``sreagent serve`` as a real subprocess."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "sreagent", "serve", "--config", str(config), "--port", str(port)],
        env={**os.environ, **(env or {})}, stdout=out, stderr=out, cwd=REPO,
        start_new_session=True,
    )


def kill9(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
