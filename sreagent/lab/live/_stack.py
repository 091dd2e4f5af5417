"""The controller and collector of a live-lab run: two separate processes on loopback.

``sreagent serve`` and ``sreagent collect`` are started exactly as an operator would start
them, each from a config file this module writes into the run's work folder (next to their
logs, the journal and the collector's state), so a run can be inspected and repeated by hand.
Neither process carries the lab's tag: they are the observers, not part of the fault, and the
sweeper must never take them for leftovers.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sreagent.lab.live._errors import LabFailed
from sreagent.lab.live._names import TAG_ENV

READY_TIMEOUT_S = 120.0
"""How long a freshly started controller may take to answer /readyz. Generous: importing the
service and migrating its store takes seconds, much longer on a loaded 2-core machine, and the
wait only costs time when it fails."""


@dataclass
class Service:
    """One started process (``controller`` or ``collector``) and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM (both flush and exit cleanly on it), SIGKILL after ``grace_s``."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        return self.popen.returncode


def free_port() -> int:
    """A loopback port nobody listens on now (the controller binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(name: str, argv: list[str], log_path: Path, path_first: Path | None = None) -> Service:
    env = {k: v for k, v in os.environ.items() if k != TAG_ENV}
    if path_first is not None:  # the lab's command stand-ins come before the system's
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', os.defpath)}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C at the terminal reaches the lab, which then
            # stops these in order (the collector first, so its last batches are acknowledged).
            start_new_session=True,
        )
    return Service(name, popen, log_path)


VERIFY_AFTER_S = 30.0


def controller_config(
    workdir: Path,
    *,
    port: int,
    token: str,
    rules: list[dict[str, Any]],
    window_s: float,
    dry_run: bool,
    target_allowlist: list[str],
) -> dict[str, Any]:
    """The controller's configuration for one lab run (keys: docs/controller.md)."""
    from sreagent.controller.settings import hash_token

    return {
        "host": "127.0.0.1",
        "port": port,
        "data_dir": str(workdir / "controller"),
        "auth": {
            "tokens": [
                {"name": "sreagent-lab", "sha256": hash_token(token),
                 "scopes": ["ingest", "read", "approve"]}
            ]
        },
        # A short flush interval: the run reads the journal as soon as an incident opens.
        "journal": {"flush_interval_s": 2.0},
        "hot_state": {"rebuild_window_s": 0},
        "workflow": {
            "window_s": window_s,
            "rules": rules,
            "dry_run": dry_run,
            "require_approval": True,
            # An approved action is verified over this much telemetry after it (the verifier
            # wants 20 samples a side at the collector's 1 s).
            "verify_after_s": VERIFY_AFTER_S,
            "chain_config": {"posture": {"target_allowlist": target_allowlist}},
        },
    }


def start_controller(workdir: Path, config: dict[str, Any], *,
                     path_first: Path | None = None) -> Service:
    """``sreagent serve --config <workdir>/controller.yaml`` (JSON is YAML); ``path_first``:
    a folder searched first for the commands its executor runs."""
    path = workdir / "controller.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    argv = [sys.executable, "-m", "sreagent", "serve", "--config", str(path),
            "--log-level", "warning"]
    return _spawn("controller", argv, workdir / "controller.log", path_first)


def wait_ready(service: Service, client: Any, timeout_s: float = READY_TIMEOUT_S) -> float:
    """Poll ``/readyz`` until it answers; the seconds it took. LabFailed with the log's tail if
    the process exits or the deadline passes."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if not service.running():
            raise LabFailed(
                f"the {service.name} exited with code {service.popen.returncode} while starting; "
                f"its log ({service.log_path}) ends:\n{service.log_tail()}"
            )
        if client.ready():
            return time.monotonic() - start
        time.sleep(0.25)
    raise LabFailed(
        f"the {service.name} did not become ready within {timeout_s:.0f} s; its log "
        f"({service.log_path}) ends:\n{service.log_tail()}"
    )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # an ASCII JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def collector_toml(
    workdir: Path, *, url: str, token_file: Path | None, interval_s: float
) -> str:
    """The collector's config for one lab run (keys: docs/collector.md).

    Processes and cgroups are scanned every interval (the default is 15 s for processes): a
    fault must be attributable to its process or cgroup in the first seconds of the incident's
    window, which ends when the incident opens.
    """
    sections: dict[str, dict[str, Any]] = {
        "": {"interval_seconds": interval_s, "state_dir": str(workdir / "collector")},
        "transport": {"endpoints": [url], **({"token_file": str(token_file)} if token_file
                                             else {})},
        "sources": {"process_interval_seconds": interval_s,
                    "cgroup_interval_seconds": interval_s},
    }
    lines: list[str] = []
    for section, values in sections.items():
        if section:
            lines.append(f"\n[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
    return "\n".join(lines) + "\n"


def start_collector(workdir: Path, *, url: str, token: str, interval_s: float) -> Service:
    """``sreagent collect --config <workdir>/collector.toml`` pushing to ``url``."""
    token_file: Path | None = None
    if token:
        token_file = workdir / "collector.token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)
    path = workdir / "collector.toml"
    path.write_text(collector_toml(workdir, url=url, token_file=token_file,
                                   interval_s=interval_s))
    argv = [sys.executable, "-m", "sreagent", "collect", "--config", str(path)]
    return _spawn("collector", argv, workdir / "collector.log")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def stop_all(services: list[Service]) -> dict[str, int | None]:
    """Stop in the given order; exit codes by name. Never raises (this runs in finally)."""
    codes: dict[str, int | None] = {}
    for service in services:
        with contextlib.suppress(Exception):
            codes[service.name] = service.stop()
    return codes
