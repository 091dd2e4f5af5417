"""Fixtures of the notebook tests: a freshly recorded lab package, marimo servers, Chromium.

The package is recorded with the current code (so it always replays identically) from the
scenario library's packet-loss scenario at 5 s resolution, once per session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, require_binary

LAB_SCENARIO = "12_packet_loss"
CHROMIUM = "/usr/bin/chromium"
APP_START_TIMEOUT_S = 180  # a cold marimo start on a loaded 2-core CI machine


@pytest.fixture(scope="session")
def lab_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sreagent.replay._lab import record_scenario

    out = tmp_path_factory.mktemp("lab") / LAB_SCENARIO
    record_scenario(LAB_SCENARIO, out, resolution_s=5)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def marimo_app(notebook: str, args: list[str], *, env: dict[str, str] | None = None, log: Path) -> Iterator[str]:
    """``marimo run`` of a notebook on a free loopback port; yields its URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "marimo", "run", str(REPO / "notebooks" / notebook),
        "--headless", "--host", "127.0.0.1", "--port", str(port), "--no-token", "--", *args,
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + APP_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"marimo exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"marimo did not serve {url} within {APP_START_TIMEOUT_S} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    require_binary("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        )  # fmt: skip
        try:
            yield chromium
        finally:
            chromium.close()
