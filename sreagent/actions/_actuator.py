"""Actuators: run an action's argv with a timeout and captured output, at most once per key.

This is the effectful side of the executor, used only as an activity handler
(sreagent.runtime.LiveActivities). The :class:`ExecutionLedger` makes execution idempotent:
for one idempotency key, the first caller runs the command while concurrent callers wait on
the key's lock, and every later caller gets the first result back marked ``duplicate``. With a
path the ledger is a SQLite file, so separate processes (two controller workers) share it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAX_OUTPUT = 16_000
"""Characters of stdout+stderr kept (the artifact field's limit)."""


def run_argv(argv: Sequence[str], timeout_s: float) -> dict[str, Any]:
    """Run a command without a shell; never raises for the command's own failures."""
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=timeout_s, check=False,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return {"exit_code": 127, "output": f"{argv[0]}: command not found", "timed_out": False}
    except subprocess.TimeoutExpired as err:
        raw = bytes(err.stdout or b"") + bytes(err.stderr or b"")
        text = raw.decode("utf-8", "replace") + f"\n[timed out after {timeout_s}s]"
        return {"exit_code": None, "timed_out": True, "output": text[-MAX_OUTPUT:]}
    out = (done.stdout + done.stderr).decode("utf-8", "replace")
    return {"exit_code": done.returncode, "output": out[-MAX_OUTPUT:], "timed_out": False}


class ExecutionLedger:
    """Idempotency: each key executes at most once, across threads and (with a path) processes."""

    def __init__(self, path: Path | str | None = None):
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._memory: dict[str, dict[str, Any]] = {}
        self._path = Path(path) if path is not None else None
        if self._path is not None:
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS executions (key TEXT PRIMARY KEY, "
                           "state TEXT NOT NULL, result TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        assert self._path is not None
        db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: str) -> dict[str, Any] | None:
        if self._path is None:
            return self._memory.get(key)
        with self._connect() as db:
            row = db.execute("SELECT result FROM executions WHERE key=? AND state='done'",
                             (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def execute_once(self, key: str, argv: Sequence[str], timeout_s: float) -> dict[str, Any]:
        """Run ``argv`` unless ``key`` already ran; returns the (first) result."""
        with self._lock_for(key):
            if self._path is None:
                if key in self._memory:
                    return {**self._memory[key], "duplicate": True}
                result = run_argv(argv, timeout_s)
                self._memory[key] = result
                return {**result, "duplicate": False}
            with self._connect() as db:
                # Claim the key inside a write transaction: another process that claimed it
                # first makes this insert a no-op, and we return (or wait for) its result.
                db.execute("BEGIN IMMEDIATE")
                claimed = db.execute(
                    "INSERT OR IGNORE INTO executions(key, state, result) VALUES (?, 'running', "
                    "'{}')", (key,)).rowcount == 1
                db.execute("COMMIT")
            if not claimed:
                previous = self.get(key)
                return {**(previous or {"exit_code": None, "output": "running elsewhere",
                                        "timed_out": False}), "duplicate": True}
            result = run_argv(argv, timeout_s)
            with self._connect() as db:
                db.execute("UPDATE executions SET state='done', result=? WHERE key=?",
                           (json.dumps(result, sort_keys=True), key))
            return {**result, "duplicate": False}


def execute_action_handler(ledger: ExecutionLedger):  # type: ignore[no-untyped-def]
    """The ``execute_action`` activity handler backed by a ledger."""

    def handle(request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        result = ledger.execute_once(str(request["idempotency_key"]),
                                     [str(a) for a in request["argv"]],
                                     float(request["timeout_s"]))
        if result.get("duplicate"):
            return "duplicate", result
        if result.get("timed_out"):
            return "timeout", result
        return ("ok" if result.get("exit_code") == 0 else "failed"), result

    return handle
