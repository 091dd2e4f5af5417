"""Delivering spooled batches to the controller: HTTP transport, acknowledgement checks, sender.

The rules (docs/collector.md, "Spool and transport"):

* A record leaves the spool only on an acknowledgement that echoes its (collector_id,
  producer_epoch, seq) with status ``accepted`` or ``duplicate``; a duplicate is a delivery.
* An acknowledgement that does not match is counted and retried; after
  ``max_ack_mismatches`` in a row for the same record it goes to the dead-letter file, so a
  misbehaving controller can never block the head for good (the seed's weakness 18).
* A batch the controller refuses as invalid (400, 409, 413, 415, 422) goes to the dead-letter
  file with the reason and the record, and the head moves on. Every dead letter is counted.
* Everything else (connection refused, timeouts, 5xx, 401/403, 429) is transient: the next
  endpoint is tried, and when all failed the sender waits an exponential backoff with full
  jitter before it tries again. A 503 naming the leader sends the next try to the leader.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from sreagent.errors import BadInput, CorruptFile
from sreagent.telemetry.batch import MAX_BODY_BYTES

from ._wire import ARROW_CONTENT_TYPE
from .spool import Spool, SpoolRecord

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest/batches"
REJECTING_STATUSES = frozenset({400, 409, 413, 415, 422})
"""Statuses that mean "this batch will never be accepted": dead-letter it and move on."""
Compression = Literal["none", "gzip", "zstd"]

# --------------------------------------------------------------------------- spool envelope

_ENVELOPE_MAGIC = b"SRB1"
_ENVELOPE_HEAD = struct.Struct("<4sI")


@dataclass(frozen=True)
class BatchKey:
    """The dedupe key the controller acknowledges."""

    collector_id: str
    producer_epoch: str
    seq: int

    @property
    def batch_id(self) -> str:
        return f"{self.collector_id}/{self.producer_epoch}/{self.seq}"


@dataclass(frozen=True)
class SpooledBatch:
    """What one spool record holds: the key (readable without decoding Arrow) and the body."""

    key: BatchKey
    content_type: str
    body: bytes

    def to_bytes(self) -> bytes:
        head = json.dumps(
            {
                "collector_id": self.key.collector_id,
                "producer_epoch": self.key.producer_epoch,
                "seq": self.key.seq,
                "content_type": self.content_type,
            },
            sort_keys=True,
        ).encode()
        return _ENVELOPE_HEAD.pack(_ENVELOPE_MAGIC, len(head)) + head + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> SpooledBatch:
        try:
            magic, head_len = _ENVELOPE_HEAD.unpack_from(data, 0)
            if magic != _ENVELOPE_MAGIC:
                raise ValueError(f"magic {magic!r}")
            start = _ENVELOPE_HEAD.size
            head = json.loads(data[start : start + head_len])
            key = BatchKey(str(head["collector_id"]), str(head["producer_epoch"]), int(head["seq"]))
            return cls(key, str(head["content_type"]), data[start + head_len :])
        except (struct.error, ValueError, KeyError, TypeError) as err:
            raise CorruptFile(f"spool record is not a spooled batch: {err}") from err


# --------------------------------------------------------------------------- backoff


def backoff_delay(
    attempt: int,
    initial_s: float,
    max_s: float,
    uniform: Callable[[float, float], float] = secrets.SystemRandom().uniform,
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max, initial * 2**attempt)].

    Full jitter spreads a fleet of collectors that lost the controller at the same moment, so
    they do not all come back in step (the AWS architecture blog's "Exponential Backoff And
    Jitter"). ``attempt`` counts from 0.
    """
    ceiling = min(max_s, initial_s * (2 ** min(attempt, 62)))
    return uniform(0.0, ceiling)


# --------------------------------------------------------------------------- HTTP transport


@dataclass(frozen=True)
class SendResult:
    """How one delivery attempt (over every endpoint) ended."""

    outcome: Literal["delivered", "duplicate", "rejected", "mismatch", "retry"]
    reason: str = ""
    endpoint: str | None = None
    status_code: int | None = None
    retry_after_s: float | None = None
    leader: str | None = None
    """The leader a 503 from a follower named, tried next."""


@dataclass
class TransportCounters:
    """Cumulative since start; reported as self-metrics and by ``capabilities``."""

    attempts_total: int = 0
    delivered_total: int = 0
    duplicate_total: int = 0
    rejected_total: int = 0
    ack_mismatch_total: int = 0
    errors_total: int = 0
    failovers_total: int = 0
    dead_letter_total: int = 0
    last_endpoint: str = ""
    last_error: str = ""


class Transport:
    """POSTs encoded batches to the first controller endpoint that takes them."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        token: str | None = None,
        ca_file: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        compression: Compression = "none",
        timeout_s: float = 10.0,
        user_agent: str = "sreagent-collector",
    ) -> None:
        if not endpoints:
            raise BadInput("no controller endpoint configured", field="transport.endpoints")
        self.endpoints = [normalise_endpoint(e) for e in endpoints]
        if compression not in ("none", "gzip", "zstd"):
            raise BadInput(f"unknown compression {compression!r}", field="transport.compression")
        self.compression: Compression = compression
        self.counters = TransportCounters()
        self._preferred = 0
        self._leader: str | None = None
        headers = {"User-Agent": user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            verify=_tls_context(ca_file, client_cert, client_key),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def send(
        self, key: BatchKey, body: bytes, content_type: str = ARROW_CONTENT_TYPE
    ) -> SendResult:
        """Try every endpoint once, starting with the one that worked last."""
        payload, encoding = self._compress(body)
        headers = {"Content-Type": content_type}
        if encoding:
            headers["Content-Encoding"] = encoding
        order = self.endpoints[self._preferred :] + self.endpoints[: self._preferred]
        if self._leader is not None:  # a leader a follower named, until it stops answering
            order.insert(0, self._leader)
        tried: set[str] = set()
        last = SendResult("retry", "no endpoint tried")
        queue = list(order)
        while queue:
            endpoint = queue.pop(0)
            if endpoint in tried:
                continue
            if tried:
                self.counters.failovers_total += 1
            tried.add(endpoint)
            result = self._post(endpoint, key, payload, headers)
            if result.outcome != "retry":
                if endpoint in self.endpoints:
                    self._preferred = self.endpoints.index(endpoint)
                    self._leader = None
                else:
                    self._leader = endpoint
                return result
            if endpoint == self._leader:
                self._leader = None
            last = result
            if result.leader and result.leader not in tried:
                queue.insert(0, result.leader)
        return last

    def _compress(self, body: bytes) -> tuple[bytes, str | None]:
        if self.compression == "gzip":
            # Level 1: on a 70 KB JSON batch a third of level 6's CPU for a body 1.2x larger
            # (both about a tenth of the JSON).
            compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            return compressor.compress(body) + compressor.flush(), "gzip"
        if self.compression == "zstd":
            import pyarrow as pa  # zstd through Arrow's codec: no extra dependency

            return pa.Codec("zstd").compress(body, asbytes=True), "zstd"
        return body, None

    def _post(
        self, endpoint: str, key: BatchKey, payload: bytes, headers: dict[str, str]
    ) -> SendResult:
        self.counters.attempts_total += 1
        self.counters.last_endpoint = endpoint
        try:
            response = self._client.post(endpoint + INGEST_PATH, content=payload, headers=headers)
        except httpx.HTTPError as err:
            return self._error(endpoint, None, f"{type(err).__name__}: {err}")
        status = response.status_code
        body = _json_or_none(response)
        if 200 <= status < 300:
            return self._check_ack(endpoint, key, status, body)
        message = _error_message(status, body, response.text)
        if status in REJECTING_STATUSES:
            self.counters.rejected_total += 1
            return SendResult("rejected", message, endpoint, status)
        leader = _leader_of(response, body, endpoint) if status == 503 else None
        return self._error(endpoint, status, message, _retry_after(response), leader)

    def _check_ack(self, endpoint: str, key: BatchKey, status: int, body: Any) -> SendResult:
        ack_status = body.get("status") if isinstance(body, dict) else None
        echoed = (
            (body.get("collector_id"), body.get("producer_epoch"), body.get("seq"))
            if isinstance(body, dict)
            else None
        )
        if ack_status in ("accepted", "duplicate") and echoed == (
            key.collector_id,
            key.producer_epoch,
            key.seq,
        ):
            if ack_status == "duplicate":
                self.counters.duplicate_total += 1
            self.counters.delivered_total += 1
            return SendResult(
                "delivered" if ack_status == "accepted" else "duplicate",
                endpoint=endpoint,
                status_code=status,
            )
        self.counters.ack_mismatch_total += 1
        reason = (
            f"acknowledgement from {endpoint} does not match {key.batch_id}: "
            f"status={ack_status!r} echoed={echoed!r}"
        )
        self.counters.last_error = reason
        log.warning("transport: %s", reason)
        return SendResult("mismatch", reason, endpoint, status)

    def _error(
        self,
        endpoint: str,
        status: int | None,
        message: str,
        retry_after: float | None = None,
        leader: str | None = None,
    ) -> SendResult:
        self.counters.errors_total += 1
        reason = f"{endpoint}: {message}" if status is None else f"{endpoint}: HTTP {message}"
        self.counters.last_error = reason
        log.info("transport: %s", reason)
        return SendResult("retry", reason, endpoint, status, retry_after, leader)


def normalise_endpoint(endpoint: str) -> str:
    """``host:port`` or ``http(s)://host:port[/prefix]`` to a base URL without a trailing /."""
    text = endpoint.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(
            f"controller endpoint {endpoint!r} is not http(s)://host[:port]",
            field="transport.endpoints",
        )
    return text.rstrip("/")


def _tls_context(
    ca_file: Path | None, client_cert: Path | None, client_key: Path | None
) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if client_cert:
            context.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
    except (OSError, ssl.SSLError) as err:
        raise BadInput(f"TLS material cannot be loaded: {err}", field="transport.tls") from err
    if client_key and not client_cert:
        raise BadInput("a client key without a client certificate", field="transport.client_cert")
    return context


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _error_message(status: int, body: Any, text: str) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        where = f" (field {error.get('field')})" if error.get("field") else ""
        return f"{status} {error.get('code', '')}: {error.get('message', '')}{where}"
    if isinstance(body, dict) and "detail" in body:  # FastAPI's default error shape
        return f"{status}: {json.dumps(body['detail'])[:500]}"
    return f"{status}: {text[:500]}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _leader_of(response: httpx.Response, body: Any, endpoint: str) -> str | None:
    """The leader a follower names: ``leader`` in the JSON body or its ``error``, or a header."""
    candidates: list[Any] = []
    if isinstance(body, dict):
        candidates.append(body.get("leader"))
        if isinstance(body.get("error"), dict):
            candidates.append(body["error"].get("leader"))
    candidates += [response.headers.get("X-Sreagent-Leader"), response.headers.get("Location")]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            text = candidate.strip()
            if "://" not in text:
                text = f"{urlsplit(endpoint).scheme}://{text}"
            text = text.removesuffix(INGEST_PATH)
            with contextlib.suppress(BadInput):
                return normalise_endpoint(text)
    return None


# --------------------------------------------------------------------------- dead letters


class DeadLetters:
    """An append-only JSONL file of batches the controller refused, with the reason.

    Each line: ``{"ts_ns", "batch_id", "collector_id", "producer_epoch", "seq", "status",
    "reason", "content_type", "body_b64"}``. Bounded: past ``max_bytes`` the file is renamed to
    ``<name>.1`` (replacing an older one) and a new one is started.
    """

    def __init__(self, path: Path, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, batch: SpooledBatch | None, raw: bytes, status: int | None, reason: str) -> None:
        line = {
            "ts_ns": time.time_ns(),
            "batch_id": batch.key.batch_id if batch else None,
            "collector_id": batch.key.collector_id if batch else None,
            "producer_epoch": batch.key.producer_epoch if batch else None,
            "seq": batch.key.seq if batch else None,
            "status": status,
            "reason": reason,
            "content_type": batch.content_type if batch else None,
            "body_b64": base64.b64encode(batch.body if batch else raw).decode(),
        }
        data = (json.dumps(line, sort_keys=True) + "\n").encode()
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_size + len(data) > self.max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        with open(self.path, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[dict[str, Any]]:
        """Every dead letter in the current file (for tests and ``capabilities``)."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


# --------------------------------------------------------------------------- the sender


@dataclass
class SenderState:
    attempt: int = 0
    """Consecutive failed rounds (drives the backoff)."""
    mismatches: int = 0
    """Consecutive mismatched acknowledgements for the head record."""
    head: tuple[int, int] | None = None
    last_result: SendResult | None = None
    delivered: list[BatchKey] = field(default_factory=list)


class Sender:
    """Drains the spool head-first through a :class:`Transport`; runs on its own thread.

    Sending is decoupled from sampling (the seed drained inline in the sampling tick, weakness
    23): the sampling loop only appends to the spool and calls :meth:`wake`.
    """

    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        dead_letters: DeadLetters,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 60.0,
        max_ack_mismatches: int = 5,
        keep_delivered_keys: bool = False,
        uniform: Callable[[float, float], float] = secrets.SystemRandom().uniform,
    ) -> None:
        self.spool = spool
        self.transport = transport
        self.dead_letters = dead_letters
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_ack_mismatches = max(1, max_ack_mismatches)
        self.keep_delivered_keys = keep_delivered_keys
        self.state = SenderState()
        self._uniform = uniform
        self._wake = threading.Event()

    def wake(self) -> None:
        """Something was appended: stop waiting and send (unless backing off)."""
        self._wake.set()

    def drain(self, max_records: int | None = None, deadline: float | None = None) -> float | None:
        """Send until the spool is empty (returns None) or a retry is needed (returns the wait).

        ``max_records`` and ``deadline`` (a ``time.monotonic`` value) bound one call.
        """
        sent = 0
        while max_records is None or sent < max_records:
            if deadline is not None and time.monotonic() >= deadline:
                return 0.0
            record = self.spool.peek()
            if record is None:
                return None
            wait = self._deliver(record)
            if wait is not None:
                return wait
            sent += 1
        return 0.0

    def run(self, stop: threading.Event) -> None:
        """The sender thread: drain, back off when needed, sleep until woken."""
        while not stop.is_set():
            try:
                wait = self.drain(deadline=time.monotonic() + 5.0)
            except Exception:  # never let the sender thread die silently
                log.exception("sender: unexpected error; retrying")
                wait = backoff_delay(self.state.attempt, self.backoff_initial_s, self.backoff_max_s)
                self.state.attempt += 1
            if wait is None:
                self._wake.wait(1.0)
                self._wake.clear()
            elif wait > 0:
                stop.wait(wait)

    def _deliver(self, record: SpoolRecord) -> float | None:
        position = (record.segment, record.offset)
        if self.state.head != position:
            self.state.head = position
            self.state.mismatches = 0
        try:
            batch = SpooledBatch.from_bytes(record.payload)
        except CorruptFile as err:
            self._dead_letter(None, record, None, str(err))
            return None
        if len(batch.body) > MAX_BODY_BYTES:
            self._dead_letter(
                batch, record, None, f"body of {len(batch.body)} bytes exceeds {MAX_BODY_BYTES}"
            )
            return None
        result = self.transport.send(batch.key, batch.body, batch.content_type)
        self.state.last_result = result
        if result.outcome in ("delivered", "duplicate"):
            self.spool.commit(record)
            self.state.attempt = 0
            if self.keep_delivered_keys:
                self.state.delivered.append(batch.key)
            return None
        if result.outcome == "rejected":
            self._dead_letter(batch, record, result.status_code, result.reason)
            self.state.attempt = 0
            return None
        if result.outcome == "mismatch":
            self.state.mismatches += 1
            if self.state.mismatches >= self.max_ack_mismatches:
                self._dead_letter(
                    batch,
                    record,
                    result.status_code,
                    f"{self.state.mismatches} mismatched acknowledgements: {result.reason}",
                )
                return None
        wait = backoff_delay(
            self.state.attempt, self.backoff_initial_s, self.backoff_max_s, self._uniform
        )
        if result.retry_after_s is not None:
            wait = max(wait, min(result.retry_after_s, self.backoff_max_s))
        self.state.attempt += 1
        return wait

    def _dead_letter(
        self, batch: SpooledBatch | None, record: SpoolRecord, status: int | None, reason: str
    ) -> None:
        self.dead_letters.add(batch, record.payload, status, reason)
        self.transport.counters.dead_letter_total += 1
        log.warning(
            "sender: dead-lettered %s: %s", batch.key.batch_id if batch else "a record", reason
        )
        self.spool.commit(record)
