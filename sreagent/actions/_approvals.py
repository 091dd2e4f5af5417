"""Approvals as data: the operator's answers, looked up by idempotency key."""

from __future__ import annotations

import threading
from typing import Any


class ApprovalBook:
    """Thread-safe record of approvals and rejections (the ``approval`` activity handler)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[str, str]] = {}

    def approve(self, key: str, by: str = "operator") -> None:
        with self._lock:
            self._answers[key] = ("approved", by)

    def reject(self, key: str, by: str = "operator") -> None:
        with self._lock:
            self._answers[key] = ("rejected", by)

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        with self._lock:
            state, by = self._answers.get(str(request["idempotency_key"]), ("pending", ""))
        return "ok", {"state": state, "by": by}
