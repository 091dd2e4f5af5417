"""The optional model re-ranker against a real loopback HTTP server with canned answers."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from sreagent.chain import Chain, ReplayActivities, artifact_ids, live_activities
from sreagent.llm import OpenAICompatibleProvider
from sreagent.runtime import ChainConfig, LlmConfig

from . import windows


class _Canned:
    body: str = ""
    status: int = 200
    delay_s: float = 0.0
    requests: ClassVar[list[dict[str, object]]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Canned]]]:
    canned = type("Canned", (_Canned,), {"requests": []})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            canned.requests.append(json.loads(self.rfile.read(length)))
            if canned.delay_s:
                threading.Event().wait(canned.delay_s)
            self.send_response(canned.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(canned.body.encode())

        def log_message(self, *args: object) -> None:
            pass

        def handle_one_request(self) -> None:
            with contextlib.suppress(BrokenPipeError):  # the timeout test's client gave up
                super().handle_one_request()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1", canned
    httpd.shutdown()


def _answer(content: str) -> str:
    return json.dumps({"model": "canned", "choices": [{"message": {"role": "assistant",
                                                                   "content": content}}]})


def _run(url: str, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    cfg = ChainConfig(llm=LlmConfig(enabled=True, base_url=url, model="canned",
                                    timeout_s=timeout))
    provider = OpenAICompatibleProvider(cfg.llm)
    chain = Chain(config=cfg)
    view = windows.noisy_neighbour().view()  # two hypotheses to order
    result = chain.run(view, activities=live_activities(llm=provider))
    provider.close()
    return chain, view, result


def test_a_valid_permutation_reorders_and_is_recorded(server) -> None:  # type: ignore[no-untyped-def]
    url, canned = server
    _, _, baseline = _run("http://127.0.0.1:9/v1", timeout=0.5)  # nothing listens: fallback
    det = baseline.of_kind("root_cause_hypothesis").payload
    assert det.ranked_by == "deterministic"
    n = len(det.hypotheses)
    assert n >= 2
    canned.body = _answer(json.dumps({"order": list(range(n, 0, -1)), "rationale": "test"}))
    chain, view, result = _run(url)
    h = result.of_kind("root_cause_hypothesis")
    assert h.payload.ranked_by == "model:canned"
    assert [x.fault_class for x in h.payload.hypotheses] == \
        [x.fault_class for x in reversed(det.hypotheses)]
    assert [x.rank for x in h.payload.hypotheses] == list(range(1, n + 1))
    request = canned.requests[0]
    assert request["response_format"]["json_schema"]["strict"] is True  # type: ignore[index]
    assert h.recorded_activity_ids
    # Replay: the recorded answer comes back, the server is not asked again.
    asked = len(canned.requests)
    again = chain.run(view, activities=ReplayActivities(result.activity_records))
    assert artifact_ids(again.artifacts) == artifact_ids(result.artifacts)
    assert len(canned.requests) == asked


@pytest.mark.parametrize("body,status", [
    ('{"order": [1]}', 200),            # not a permutation of all ranks
    ('{"order": [1, 1, 2]}', 200),      # repeated rank
    ("this is not json", 200),
    ('{"order": [2, 1], "extra": 1}', 200),  # schema forbids extra keys
    ("", 500),
])
def test_invalid_answers_fall_back(server, body: str, status: int) -> None:  # type: ignore[no-untyped-def]
    url, canned = server
    canned.body = _answer(body) if status == 200 else "oops"
    canned.status = status
    _, _, result = _run(url)
    assert result.of_kind("root_cause_hypothesis").payload.ranked_by == "deterministic"


def test_a_slow_model_falls_back(server) -> None:  # type: ignore[no-untyped-def]
    url, canned = server
    canned.body = _answer('{"order": [1]}')
    canned.delay_s = 2.0
    _, _, result = _run(url, timeout=0.3)
    assert result.of_kind("root_cause_hypothesis").payload.ranked_by == "deterministic"
    rec = next(r for r in result.activity_records if r.kind == "llm_complete")
    assert rec.status == "timeout"
