"""``IngestFastPath`` answers every ingest request exactly as the FastAPI route does.

The fast path serves all ingest traffic; the route is the endpoint's OpenAPI description. The
same requests go to an app with the fast path and to one without it (the route answers
there); status, body and the headers a collector acts on must be the same.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sreagent.api import create_app
from sreagent.api.routes import ingest as ingest_routes
from sreagent.telemetry import batch as contract
from tests.controller.helpers import ARROW, auth, body, make_batch, make_settings

URL = "/api/v1/ingest/batches"


def requests() -> list[tuple[str, dict[str, str], bytes]]:
    good = body(make_batch(seq=1, samples=5))
    return [
        ("accepted", {**ARROW, **auth("ingest")}, good),
        ("duplicate", {**ARROW, **auth("ingest")}, good),
        ("conflict", {**ARROW, **auth("ingest")}, body(make_batch(seq=1, samples=5, value=0.9))),
        ("json duplicate", {"Content-Type": "application/json", **auth("admin")},
         body(make_batch(seq=1, samples=5), "application/json")),
        ("malformed", {**ARROW, **auth("ingest")}, b"not arrow"),
        ("content type", {"Content-Type": "text/plain", **auth("ingest")}, good),
        ("encoding", {**ARROW, "Content-Encoding": "br", **auth("ingest")}, good),
        ("no token", ARROW, good),
        ("bad scheme", {**ARROW, "Authorization": "Basic abc"}, good),
        ("unknown token", {**ARROW, "Authorization": "Bearer nope"}, good),
        ("wrong scope", {**ARROW, **auth("read")}, good),
        ("too large", {**ARROW, **auth("ingest")}, b"x" * (contract.MAX_BODY_BYTES + 1)),
        ("empty", {**ARROW, **auth("ingest")}, b""),
    ]


def answers(app: FastAPI) -> list[tuple[str, int, Any, str | None, str | None]]:
    out = []
    with TestClient(app) as client:
        for name, headers, data in requests():
            response = client.post(URL, content=data, headers=headers)
            out.append((name, response.status_code, response.json(),
                        response.headers.get("retry-after"),
                        response.headers.get("www-authenticate")))
    return out


def test_fast_path_answers_like_the_route(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[str] = []
    real = ingest_routes._ingest

    async def counting(*args: Any, **kwargs: Any) -> Any:
        served.append(sys._getframe(1).f_code.co_name)  # who called: fast path or route
        return await real(*args, **kwargs)

    monkeypatch.setattr(ingest_routes, "_ingest", counting)
    fast = create_app(make_settings(tmp_path / "fast", ingest={"decode_workers": 0}))
    route = create_app(make_settings(tmp_path / "route", ingest={"decode_workers": 0}))
    route.ingest_fast_path = False  # type: ignore[attr-defined]

    with_fast = answers(fast)
    assert set(served) == {"__call__"}, "the fast path served every ingest request"
    served.clear()
    with_route = answers(route)
    assert set(served) == {"post_batch"}, "the route served every ingest request"

    assert with_fast == with_route
    by_name = {name: (status, data) for name, status, data, _, _ in with_fast}
    assert by_name["accepted"][1]["status"] == "accepted"
    assert by_name["duplicate"][1]["status"] == "duplicate"
    assert by_name["json duplicate"][1]["status"] == "duplicate"
    assert [by_name[n][0] for n in ("conflict", "malformed", "content type", "encoding",
                                     "no token", "bad scheme", "unknown token", "wrong scope",
                                     "too large", "empty")] == [
        409, 400, 415, 415, 401, 401, 401, 403, 413, 400]
