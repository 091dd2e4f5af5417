"""Outgoing notifications: generic JSON or Slack-compatible webhooks, never blocking ingest.

:meth:`Notifier.notify` only puts a message on a bounded queue (dropping it, counted, when
the queue is full); one sender thread posts it to every webhook subscribed to the event, with
retries and exponential backoff. Events: ``incident_opened``, ``approval_needed``,
``action_executed``, ``incident_closed``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from typing import Any

import httpx

from sreagent.controller.settings import NotificationSettings, WebhookTarget

log = logging.getLogger(__name__)

EVENTS = ("incident_opened", "approval_needed", "action_executed", "incident_closed")


def render(target: WebhookTarget, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The request body for one target: our JSON, or Slack's ``{"text", "blocks"}``."""
    if target.format == "slack":
        details = ", ".join(f"{k}={v}" for k, v in sorted(payload.items()))
        text = f"sreagent: {event.replace('_', ' ')} ({details})"
        return {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        }
    return {"event": event, "source": "sreagent", **payload}


class Notifier:
    def __init__(self, settings: NotificationSettings):
        self.settings = settings
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(
            maxsize=settings.queue_size
        )
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.settings.webhooks and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=1)
            self._thread.join(timeout=5)
            self._thread = None

    def notify(self, event: str, payload: dict[str, Any]) -> None:
        if not self.settings.webhooks:
            return
        try:
            self._queue.put_nowait((event, payload))
        except queue.Full:
            self.dropped += 1

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        with httpx.Client(timeout=self.settings.timeout_s) as client:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                event, payload = item
                for target in self.settings.webhooks:
                    if event in target.events:
                        self._send(client, target, event, payload)

    def _send(
        self, client: httpx.Client, target: WebhookTarget, event: str, payload: dict[str, Any]
    ) -> None:
        body = render(target, event, payload)
        delay = self.settings.backoff_s
        for attempt in range(self.settings.retries + 1):
            try:
                response = client.post(target.url, json=body)
                if response.status_code < 500 and response.status_code != 429:
                    if response.is_success:
                        self.sent += 1
                    else:  # a 4xx will not get better by retrying
                        self.failed += 1
                        log.warning(
                            "webhook %s refused %s: %s", target.url, event, response.status_code
                        )
                    return
            except httpx.HTTPError as err:
                log.info("webhook %s attempt %d failed: %s", target.url, attempt + 1, err)
            if attempt < self.settings.retries:
                time.sleep(delay)
                delay *= 2
        self.failed += 1
