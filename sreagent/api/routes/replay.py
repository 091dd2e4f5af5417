"""Replay of a stored evidence package, optionally as a what-if with configuration overrides.

The same function as ``sreagent replay``: :class:`sreagent.replay.Replayer` with overrides
parsed by :func:`sreagent.replay.parse_override`. Only packages inside the configured evidence
folder (``evidence_dir``) are read: a path that resolves anywhere else, symbolic links
included, is refused before anything is opened.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sreagent.api.deps import ControllerDep, ReadScope, SettingsDep
from sreagent.controller.errors import Forbidden, InvalidState, NotFound, Overloaded
from sreagent.errors import BadInput, SreagentError

router = APIRouter(prefix="/api/v1", tags=["replay"])

MAX_CONCURRENT_REPLAYS = 2
"""A replay rebuilds a whole window and re-runs the chain (seconds of CPU); beyond this many at
once the endpoint answers 503 with Retry-After instead of queueing work without bound."""
_slots = threading.BoundedSemaphore(MAX_CONCURRENT_REPLAYS)


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")] | \
        None = None
    """A completed run of this controller: its package ``<data_dir>/runs/<run_id>``, which
    records the chain's inputs and activity results (docs/replay.md)."""
    package: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    """A package folder, relative to ``evidence_dir`` (or absolute, but inside it)."""
    overrides: Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=100)] = []
    """``KEY=VALUE`` of the chain configuration, values read as JSON (``detection.z_open=8``,
    ``posture.dry_run=false``): a what-if replay that answers a decision diff."""
    collect_all: bool = False
    """List every divergence, not only the first."""

    @model_validator(mode="after")
    def _one_target(self) -> ReplayRequest:
        if (self.run_id is None) == (self.package is None):
            raise ValueError("name exactly one of run_id and package")
        return self


def _inside(root: Path, candidate: Path, *, field: str) -> Path:
    base = root.resolve()
    resolved = (base / candidate).resolve()  # an absolute candidate replaces base
    if resolved != base and base not in resolved.parents:
        raise Forbidden(
            f"{candidate} is outside the evidence folder {base}; only packages under it "
            "can be replayed", field=field)
    if not resolved.is_dir():
        raise NotFound(f"no evidence package at {candidate} under {base}", field=field)
    return resolved


@router.post("/replay", responses={200: {"description": "replay result"}})
def replay(request: ReplayRequest, controller: ControllerDep, settings: SettingsDep,
           _: ReadScope) -> dict[str, Any]:
    """Replay a recorded chain run; with ``overrides``, a what-if with its decision diff.

    Answers ``identical``, the ``divergences`` (position, kind, field diffs) with a readable
    ``describe`` per divergence, and for what-ifs ``decisions`` (incident, ranking, actions,
    verification) with a ``summary``.
    """
    from sreagent.chain import ChainConfig
    from sreagent.replay import Replayer, apply_overrides, parse_override

    parsed: dict[str, Any] = {}
    for i, text in enumerate(request.overrides):
        try:
            key, value = parse_override(text)
        except BadInput as err:
            raise BadInput(err.message, field=f"overrides[{i}]") from None
        parsed[key] = value
    if parsed:
        try:
            apply_overrides(ChainConfig(), parsed)  # name a bad key before any work
        except BadInput as err:
            raise BadInput(err.message, field=f"overrides.{err.field}") from None
    if request.run_id is not None:
        run = controller.store.get_run(request.run_id)  # 404 naming run_id when unknown
        if run["state"] != "completed":
            # The package is written when the run completes; until then there is nothing whole
            # to replay (a failed or cancelled run never gets one).
            raise InvalidState(
                f"run {request.run_id} is {run['state']}; only a completed run has an evidence "
                "package to replay", field="run_id")
        path = _inside(settings.runs_root, Path(request.run_id), field="run_id")
    else:
        path = _inside(settings.replay_root, Path(str(request.package)), field="package")
    if not _slots.acquire(blocking=False):
        raise Overloaded(f"{MAX_CONCURRENT_REPLAYS} replays are running; retry shortly")
    try:
        result = Replayer(overrides=parsed, collect_all=request.collect_all).replay(path)
    except SreagentError as err:
        # The API's error body has no path: name the damaged file in the message.
        if err.path:
            err.message = f"{err.path}: {err.message}"
        raise
    finally:
        _slots.release()
    out = result.to_json()
    out["describe"] = [d.describe() for d in result.divergences]
    out["summary"] = result.decisions.summary() if result.decisions else None
    return out
