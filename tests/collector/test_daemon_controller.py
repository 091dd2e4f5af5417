"""End to end: the collector daemon against the real controller (`sreagent serve`), both as
separate processes on 127.0.0.1, with bearer tokens."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sreagent.collector.spool import Spool
from tests.collector.stubs import free_port, wait_until

pytest.importorskip("sreagent.api")

INGEST_TOKEN = "collector-ingest-token"
READ_TOKEN = "reader-token"


def _start_controller(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    config = tmp_path / "controller.toml"
    config.write_text(
        f'host = "127.0.0.1"\nport = {port}\ndata_dir = "{tmp_path / "controller"}"\n'
        "[[auth.tokens]]\n"
        f'name = "collector"\nsha256 = "{hashlib.sha256(INGEST_TOKEN.encode()).hexdigest()}"\n'
        'scopes = ["ingest"]\n'
        "[[auth.tokens]]\n"
        f'name = "reader"\nsha256 = "{hashlib.sha256(READ_TOKEN.encode()).hexdigest()}"\n'
        'scopes = ["read"]\n'
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sreagent",
            "serve",
            "--config",
            str(config),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_collector_daemon_delivers_to_the_real_controller(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    controller = _start_controller(tmp_path, port)
    collector: subprocess.Popen[str] | None = None
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(ready, 60), controller.stderr.read() if controller.poll() else ""
        token_file = tmp_path / "token"
        token_file.write_text(INGEST_TOKEN + "\n")
        config = tmp_path / "collector.toml"
        config.write_text(
            f'interval_seconds = 0.3\nstate_dir = "{tmp_path / "state"}"\n'
            f'[transport]\nendpoints = ["{url}"]\ntoken_file = "{token_file}"\n'
            '[sources]\nenabled = ["cpu", "memory", "psi", "processes"]\n'
            'disabled = ["kmsg", "ebpf"]\n'
        )
        collector = subprocess.Popen(
            [sys.executable, "-m", "sreagent", "collect", "--config", str(config)],
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("SREAGENT_")},
        )
        headers = {"Authorization": f"Bearer {READ_TOKEN}"}

        def status() -> dict[str, object]:
            return dict(httpx.get(f"{url}/api/v1/ingest/status", headers=headers).json())

        assert wait_until(lambda: int(status()["accepted"]) >= 5, 60)  # type: ignore[call-overload]
        collector.send_signal(signal.SIGTERM)
        _, stderr = collector.communicate(timeout=30)
        assert collector.returncode == 0, stderr
        with Spool(tmp_path / "state" / "spool") as spool:
            assert spool.stats().records == 0
        final = status()
        collector_id = (tmp_path / "state" / "collector_id").read_text().strip()
        assert final["last_collector_id"] == collector_id
        assert final["rejected"] == {} and final["conflicts"] == 0
        epoch_seq = str(final["last_batch_id"]).split("/")
        assert int(epoch_seq[-1]) == final["accepted"], "every batch of the epoch, none twice"
        assert "dead-letter" not in " ".join(p.name for p in (tmp_path / "state").iterdir())
    finally:
        for proc in (collector, controller):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
