"""Scrape targets against a real HTTP server on loopback serving Prometheus text."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sreagent.collector import ScrapeTarget
from sreagent.collector._scrape import ScrapeSource, parse_exposition
from sreagent.collector._source import samples_of
from sreagent.errors import BadInput
from tests.collector.fixture_tree import T0, one

EXPOSITION = """\
# HELP vllm:num_requests_running Requests running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="llama"} 3
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="0.5",model_name="llama"} 7
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="llama"} 9
vllm:e2e_request_latency_seconds_sum{model_name="llama"} 4.5
vllm:e2e_request_latency_seconds_count{model_name="llama"} 9
# TYPE broken gauge
broken NaN
"""


class _Handler(BaseHTTPRequestHandler):
    body = EXPOSITION
    status = 200

    def do_GET(self) -> None:
        data = self.body.encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/metrics", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_exposition_becomes_samples_under_the_target_entity(
    server: tuple[str, type[_Handler]],
) -> None:
    url, _ = server
    source = ScrapeSource([ScrapeTarget("vllm", url)])
    try:
        s = source.read(T0).samples
    finally:
        source.close()
    e = "scrape/vllm"
    assert one(s, "vllm:num_requests_running", e, model_name="llama") == 3
    assert one(s, "vllm:e2e_request_latency_seconds_bucket", e, le="0.5", model_name="llama") == 7
    assert one(s, "vllm:e2e_request_latency_seconds_count", e, model_name="llama") == 9
    assert one(s, "scrape_up", e) == 1
    assert 0 <= one(s, "scrape_duration_seconds", e) < 5
    assert not any(x.metric == "broken" for x in s)  # NaN dropped
    assert source.capability().mode == "kernel"


def test_failing_targets_report_down_and_say_why(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.status = 500
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens once the probe closes
    source = ScrapeSource(
        [ScrapeTarget("err", url), ScrapeTarget("gone", f"http://127.0.0.1:{closed_port}/m", 1.0)]
    )
    try:
        s = source.read(T0).samples
        assert one(s, "scrape_up", "scrape/err") == 0
        assert one(s, "scrape_up", "scrape/gone") == 0
        cap = source.capability()
        assert cap.mode == "off"
        assert "err: HTTPStatusError" in cap.reason
        assert "gone: ConnectError" in cap.reason
        handler.status = 200
        source.read(T0 + 1)
        cap = source.capability()
        assert cap.mode == "kernel"
        assert "failing gone" in cap.reason
    finally:
        source.close()


def test_malformed_exposition_is_an_error_not_a_crash(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.body = "metric{unclosed 1\n"
    source = ScrapeSource([ScrapeTarget("bad", url)])
    try:
        s = source.read(T0).samples
    finally:
        source.close()
    assert [x.metric for x in s] == ["scrape_up"]
    assert "bad: ValueError" in source.capability().reason


def test_series_and_labels_are_bounded() -> None:
    labels = ",".join(f'l{i:02d}="{"v" * 300}"' for i in range(20))
    text = "".join(f'm{{{labels},n="{k}"}} {k}\n' for k in range(10))
    s = samples_of(parse_exposition(text, T0, "scrape/x", max_series=4))
    assert len(s) == 4
    assert all(len(x.labels) == 16 and max(map(len, x.labels.values())) == 256 for x in s)


@pytest.mark.parametrize(
    ("name", "url", "message"),
    [
        ("", "http://x", "non-empty"),
        ("a/b", "http://x", "without '/'"),
        ("ok", "file:///etc/passwd", "is not http"),
    ],
)
def test_bad_targets_are_refused(name: str, url: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        ScrapeTarget(name, url)
