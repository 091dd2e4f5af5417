"""Wire encodings of a batch, and its canonical digest.

Two encodings are accepted:

* ``application/vnd.sreagent.batch.v1+arrow`` (what the collector sends): an Arrow IPC stream
  holding one record batch with :data:`~sreagent.telemetry.arrow.BATCH_SCHEMA`, buffers
  compressed with zstd. Compact, and the controller reads it into columns without a parse.
* ``application/json`` (for curl users and tests): the batch as one JSON object.

Either may additionally carry an HTTP ``Content-Encoding`` of ``gzip`` or ``zstd``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from sreagent.canonical import canonical_json, sha256_hex
from sreagent.errors import BadInput, LimitExceeded, UnsupportedEncoding
from sreagent.telemetry import batch as b
from sreagent.telemetry._digest import emit_frame
from sreagent.telemetry._ipc import read_one_batch
from sreagent.telemetry.arrow import (
    BATCH_SCHEMA,
    BatchFrame,
    batch_to_table,
    frame_from_record_batch,
    frame_from_table,
    validate_model,
)

ARROW_CONTENT_TYPE = "application/vnd.sreagent.batch.v1+arrow"
JSON_CONTENT_TYPE = "application/json"
CONTENT_TYPES = (ARROW_CONTENT_TYPE, JSON_CONTENT_TYPE)
CONTENT_ENCODINGS = ("identity", "gzip", "zstd")

_IPC_OPTIONS = ipc.IpcWriteOptions(compression="zstd")
_IPC_READ_OPTIONS = ipc.IpcReadOptions(use_threads=False)
"""One batch is a few small buffers: decompressing them on Arrow's thread pool costs more in
hand-offs than it saves (about 4x slower per batch on a busy 2-core machine)."""


def encode_batch(batch: b.Batch, content_type: str = ARROW_CONTENT_TYPE) -> bytes:
    """Encode a batch for the wire (Arrow IPC with zstd by default, or JSON)."""
    if content_type == JSON_CONTENT_TYPE:
        return canonical_json(batch.model_dump(mode="json"))
    if content_type != ARROW_CONTENT_TYPE:
        raise UnsupportedEncoding(f"cannot encode as {content_type!r}; use one of {CONTENT_TYPES}")
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, BATCH_SCHEMA, options=_IPC_OPTIONS) as writer:
        writer.write_table(batch_to_table(batch))
    return bytes(sink.getvalue().to_pybytes())


def decode_body(body: bytes, content_encoding: str | None = None) -> bytes:
    """Undo an HTTP ``Content-Encoding`` with a cap on the decoded size."""
    encoding = (content_encoding or "identity").strip().lower()
    if len(body) > b.MAX_BODY_BYTES:
        raise LimitExceeded(f"body of {len(body)} bytes, at most {b.MAX_BODY_BYTES} allowed")
    if encoding == "identity":
        return body
    limit = b.MAX_DECODED_BYTES
    try:
        if encoding == "gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = inflater.decompress(body, limit + 1)
            if len(data) > limit or inflater.unconsumed_tail:
                raise LimitExceeded(f"gzip body expands past {limit} bytes")
            return data
        if encoding == "zstd":
            import pyarrow as _pa  # zstd through Arrow's codec: no extra dependency

            codec = _pa.Codec("zstd")
            stream = _pa.input_stream(_pa.py_buffer(body), compression=codec.name)
            data = stream.read(limit + 1)
            if len(data) > limit:
                raise LimitExceeded(f"zstd body expands past {limit} bytes")
            return bytes(data)
    except (OSError, zlib.error, gzip.BadGzipFile, pa.ArrowInvalid) as err:
        raise BadInput(f"body is not valid {encoding}: {err}") from err
    raise UnsupportedEncoding(
        f"Content-Encoding {encoding!r} is not supported; use one of {CONTENT_ENCODINGS}"
    )


def decode_batch(
    body: bytes, content_type: str = ARROW_CONTENT_TYPE, content_encoding: str | None = None
) -> BatchFrame:
    """Decode and validate a wire body into a :class:`BatchFrame`.

    Raises :class:`~sreagent.errors.BadInput` (or a subclass) naming what was wrong.
    """
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in CONTENT_TYPES:
        raise UnsupportedEncoding(
            f"Content-Type {content_type!r} is not a batch encoding; send {ARROW_CONTENT_TYPE} "
            f"or {JSON_CONTENT_TYPE}"
        )
    data = decode_body(body, content_encoding)
    if media_type == JSON_CONTENT_TYPE:
        return _decode_json(data)
    rows = read_one_batch(data)  # the usual shape, read quickly; None: anything else
    if rows is not None:
        _check_arrays(rows)
        return frame_from_record_batch(rows)
    try:
        reader = ipc.open_stream(pa.py_buffer(data), options=_IPC_READ_OPTIONS)
        table = reader.read_all()
    except (pa.ArrowException, OSError) as err:  # NotImplemented too: a damaged schema
        raise BadInput(f"body is not an Arrow IPC stream: {err}") from err
    for rows in table.to_batches():
        _check_arrays(rows)
    return frame_from_table(table)


def _check_arrays(rows: pa.RecordBatch) -> None:
    """Arrow's IPC reader checks the messages, not the arrays in them: a damaged body can
    hold offsets past a buffer's end or invalid UTF-8. Full validation (one C++ pass, about
    25 us for a 500-sample batch) names that before anything reads the values."""
    try:
        rows.validate(full=True)
    except pa.ArrowException as err:
        raise BadInput(f"body holds an invalid Arrow batch: {err}") from None


def _decode_json(data: bytes) -> BatchFrame:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"body is not valid UTF-8 (byte {err.start})") from None
    try:
        # parse_constant turns NaN/Infinity literals into a named error instead of floats
        raw = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise BadInput(
            f"body is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    if not isinstance(raw, dict):
        raise BadInput("a batch is a JSON object")
    from sreagent.telemetry.arrow import frame_from_batch

    return frame_from_batch(validate_model(b.Batch, raw))


def _reject_constant(name: str) -> Any:
    from sreagent.errors import NonFiniteValue

    raise NonFiniteValue(f"{name} is not a finite number; send finite values only")


def batch_digest(frame: BatchFrame) -> str:
    """SHA-256 of the batch's canonical content, independent of its wire encoding.

    The canonical content is the canonical JSON of ``{"header": ..., "samples": {column:
    [values]}, "processes": ..., "events": ...}``, with label maps as lists of ``[key, value]``
    pairs sorted by key. A resend of the same batch has the same digest whether it came as
    Arrow or JSON; a different payload under the same (collector_id, producer_epoch, seq) does
    not.
    """
    header = frame.header.model_dump(mode="json")
    tables = {"samples": frame.samples, "processes": frame.processes, "events": frame.events}
    digest = hashlib.sha256()
    try:
        # Column by column from Arrow (sreagent.telemetry._digest): the same bytes as the
        # Python-object path below, without a Python object per value.
        emit_frame(digest.update, canonical_json(header), tables)
    except ValueError:  # a non-finite float: the Python path names where it is
        return content_digest(header, {k: t.to_pydict() for k, t in tables.items()})
    return digest.hexdigest()


def content_digest(header: dict[str, Any], tables: dict[str, dict[str, list[Any]]]) -> str:
    """The digest of :func:`batch_digest` from a JSON-ready header and column lists.

    Importers and generators that build tables directly use this to get the same digest a
    decoded frame of the same content would have.
    """
    content: dict[str, Any] = {"header": header}
    for name in ("samples", "processes", "events"):
        columns = dict(tables[name])
        for key in ("labels", "attributes"):
            if key in columns:
                # Arrow hands maps back as lists of (key, value) tuples: sort those as they
                # are (JSON writes a tuple as a list); most rows have none.
                columns[key] = [
                    (sorted(v) if isinstance(v, list) else sorted(_pairs(v))) if v else []
                    for v in columns[key]
                ]
        content[name] = columns
    return sha256_hex(canonical_json(content))


def _pairs(labels: Any) -> list[tuple[str, str]]:
    return list(labels.items()) if isinstance(labels, dict) else [tuple(p) for p in labels]
