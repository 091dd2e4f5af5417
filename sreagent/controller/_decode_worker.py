"""A decode worker: one child process of the controller that decodes, validates and digests
batches (``python -m sreagent.controller._decode_worker``).

The controller's own process is bound by one GIL; decoding is its largest CPU cost per batch,
so it runs here, one request at a time, and the controller keeps only what needs shared state
(dedupe, write-ahead log, hot state). The protocol is framed binary over the child's stdin and
stdout and is private to :mod:`sreagent.controller.decoders`, which documents it.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from typing import BinaryIO

import pyarrow as pa
import pyarrow.ipc as ipc

from sreagent.controller.hotstate import series_keys_digest
from sreagent.errors import SreagentError
from sreagent.telemetry import batch_digest, decode_batch
from sreagent.telemetry.arrow import BatchFrame

REQUEST = struct.Struct("<IIHH")
"""request id, body length, content-type length, content-encoding length."""
RESPONSE = struct.Struct("<IBI")
"""request id, status, payload length."""
OK, REFUSED, CRASHED = 0, 1, 2
"""Statuses: decoded; bad input (payload: the error as JSON); an unexpected error (its text)."""
TABLES = ("samples", "processes", "events")
SECTION = struct.Struct("<I")


def encode_frame(frame: BatchFrame, digest: str) -> bytes:
    """The OK payload: digest, header JSON, one Arrow IPC stream per non-empty table, each
    behind its length (0 for an empty table), then the samples' series keys digest for hot
    state (:func:`~sreagent.controller.hotstate.series_keys_digest`; length 0 without
    samples)."""
    parts = [digest.encode("ascii")]
    header = frame.header.model_dump_json().encode()
    parts += [SECTION.pack(len(header)), header]
    for name in TABLES:
        table: pa.Table = getattr(frame, name)
        if table.num_rows == 0:
            parts.append(SECTION.pack(0))
            continue
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        data = sink.getvalue().to_pybytes()
        parts += [SECTION.pack(len(data)), data]
    keys_digest = series_keys_digest(frame.samples) or b""
    parts += [SECTION.pack(len(keys_digest)), keys_digest]
    return b"".join(parts)


def handle(body: bytes, content_type: str, content_encoding: str | None) -> tuple[int, bytes]:
    """Decode one request; never raises."""
    try:
        frame = decode_batch(body, content_type, content_encoding)
        return OK, encode_frame(frame, batch_digest(frame))
    except SreagentError as err:
        return REFUSED, json.dumps({"class": type(err).__name__, **err.to_dict()}).encode()
    except Exception as err:  # a bug: the controller answers 500 and logs this text
        return CRASHED, f"{type(err).__name__}: {err}".encode()


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    if len(data) < size:
        return None  # the controller closed the pipe: exit quietly
    return data


def serve(requests: BinaryIO, responses: BinaryIO) -> None:
    """Answer requests until the controller closes the pipe."""
    while True:
        head = _read_exactly(requests, REQUEST.size)
        if head is None:
            return
        request_id, body_len, type_len, encoding_len = REQUEST.unpack(head)
        rest = _read_exactly(requests, type_len + encoding_len + body_len)
        if rest is None:
            return
        content_type = rest[:type_len].decode()
        content_encoding = rest[type_len:type_len + encoding_len].decode() or None
        status, payload = handle(rest[type_len + encoding_len:], content_type, content_encoding)
        responses.write(RESPONSE.pack(request_id, status, len(payload)))
        responses.write(payload)
        responses.flush()


def main() -> None:
    # The protocol owns the original stdout; anything printed by accident goes to stderr.
    responses = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, responses)


if __name__ == "__main__":
    main()
