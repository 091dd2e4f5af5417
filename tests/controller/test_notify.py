"""Outgoing notifications against a real local HTTP receiver: retries, formats, bounded queue."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sreagent.controller.notify import Notifier
from sreagent.controller.settings import NotificationSettings
from tests.controller.helpers import wait_for


class Receiver:
    def __init__(self, fail_first: int = 0, status: int = 500):
        self.bodies: list[dict] = []
        self.attempts = 0
        self.fail_first = fail_first
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(receiver.status)
                else:
                    receiver.bodies.append(json.loads(data))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.server.shutdown()


def _notifier(url: str, **kw: object) -> Notifier:
    settings = NotificationSettings.model_validate(
        {"webhooks": [{"url": url, **kw.pop("target", {})}], "backoff_s": 0.01, **kw})
    return Notifier(settings)


def test_retries_until_delivered_and_filters_events(receiver: Receiver) -> None:
    notifier = _notifier(receiver.url, target={"events": ["incident_opened"]})
    notifier.start()
    try:
        notifier.notify("approval_needed", {"run_id": "r1"})  # not subscribed: not sent
        notifier.notify("incident_opened", {"incident_id": "i1", "host": "h"})
        wait_for(lambda: notifier.sent == 1, what="a delivered notification")
    finally:
        notifier.stop()
    assert receiver.attempts == 3  # two 500s, then 200
    assert receiver.bodies == [{"event": "incident_opened", "source": "sreagent",
                                "incident_id": "i1", "host": "h"}]
    assert notifier.failed == 0


def test_slack_format() -> None:
    r = Receiver()
    notifier = _notifier(r.url, target={"format": "slack"})
    notifier.start()
    try:
        notifier.notify("incident_closed", {"incident_id": "i9"})
        wait_for(lambda: notifier.sent == 1, what="a delivered notification")
    finally:
        notifier.stop()
        r.server.shutdown()
    [body] = r.bodies
    assert "incident closed" in body["text"] and "incident_id=i9" in body["text"]
    assert body["blocks"][0]["text"]["type"] == "mrkdwn"


def test_a_4xx_is_not_retried_and_gives_up_after_retries() -> None:
    r = Receiver(fail_first=100, status=404)
    notifier = _notifier(r.url, retries=3)
    notifier.start()
    try:
        notifier.notify("incident_opened", {})
        wait_for(lambda: notifier.failed == 1, what="a failed notification")
    finally:
        notifier.stop()
        r.server.shutdown()
    assert r.attempts == 1


def test_full_queue_drops_instead_of_blocking() -> None:
    # Not started: nothing drains the queue, so notify() must return at once and count drops.
    notifier = _notifier("http://127.0.0.1:9/unused", queue_size=2)
    for i in range(5):
        notifier.notify("incident_opened", {"i": i})
    assert notifier.queued == 2 and notifier.dropped == 3
