"""Activities: the only way the chain has effects, recorded live and fed back in replay.

An activity is named by ``kind`` (``execute_action``, ``approval``, ``llm_complete``) and a
``key`` (the idempotency key, or a digest of the request). :class:`LiveActivities` runs the
handler registered for the kind and records the result as an
:class:`~sreagent.evidence.ActivityRecord`; :class:`ReplayActivities` hands the recorded
result back and never runs anything, so a replay cannot act on the world.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from sreagent.canonical import canonical_digest
from sreagent.errors import CheckFailed
from sreagent.evidence import ActivityRecord
from sreagent.runtime._guard import allow_effects

Handler = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]
"""Runs one request; returns (status, result). Must not raise for expected failures."""


class ActivityNotRecorded(CheckFailed):
    """A replay asked for an activity the recording does not hold: the run diverged."""

    code = "activity_not_recorded"


def activity_id(kind: str, key: str, request: Mapping[str, Any]) -> str:
    """Stable id of one activity call: its kind and the digest of (key, request)."""
    return f"{kind}:{canonical_digest({'key': key, 'request': dict(request)})[:24]}"


class Activities(Protocol):
    """What a :class:`~sreagent.runtime.RoleContext` needs to perform an activity."""

    def perform(self, kind: str, key: str, request: dict[str, Any],
                logical_time: int) -> ActivityRecord: ...


class LiveActivities:
    """Runs activities through handlers and records each result."""

    def __init__(self, handlers: Mapping[str, Handler] | None = None):
        self._handlers = dict(handlers or {})
        self._lock = threading.Lock()
        self.records: list[ActivityRecord] = []

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def perform(self, kind: str, key: str, request: dict[str, Any],
                logical_time: int) -> ActivityRecord:
        handler = self._handlers.get(kind)
        if handler is None:
            status, result = "unavailable", {"reason": f"no handler for activity {kind!r}"}
        else:
            with allow_effects():
                status, result = handler(request)
        record = ActivityRecord(activity_id=activity_id(kind, key, request), kind=kind, key=key,
                                logical_time=logical_time, status=status, request=request,
                                result=result)
        with self._lock:
            self.records.append(record)
        return record


class ReplayActivities:
    """Feeds recorded results back; asking for anything unrecorded is a divergence."""

    def __init__(self, records: Iterable[ActivityRecord]):
        self._by_id: dict[str, ActivityRecord] = {}
        for record in records:
            self._by_id.setdefault(record.activity_id, record)
        self.records: list[ActivityRecord] = []

    def perform(self, kind: str, key: str, request: dict[str, Any],
                logical_time: int) -> ActivityRecord:
        wanted = activity_id(kind, key, request)
        record = self._by_id.get(wanted)
        if record is None:
            raise ActivityNotRecorded(
                f"the replay asked for activity {wanted} ({kind}, key {key!r}) which the "
                "recording does not hold; the role chain diverged before this call")
        self.records.append(record)
        return record
