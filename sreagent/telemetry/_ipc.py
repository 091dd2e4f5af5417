"""A quick reader for the common shape of a batch body: one Arrow IPC stream holding a schema
and one record batch, its buffers compressed with zstd (what the collector sends).

Arrow's stream reader is correct for every stream but slow for this one shape on a busy
2-core machine, for two reasons this module removes:

* it parses the schema message (about 70 nested fields) on every body; here each distinct
  schema message is parsed once and remembered by its exact bytes (a small bounded cache:
  a collector sends the same schema message with every batch);
* it decompresses every buffer (about 60 per batch) with ``ZSTD_decompress``, which allocates
  and frees a fresh zstd context per call; here one context per thread is reused
  (``zstandard.ZstdDecompressor``).

How: the record batch message's metadata (a flatbuffer) is read with a few ``struct`` reads,
the buffers are decompressed into a new body, and the metadata is patched in place to
describe that body (new buffer offsets and lengths, body length, and the compression field
marked absent). Arrow then reads that uncompressed message against the remembered schema, so
it still builds and checks every array itself.

Anything outside that shape (no continuation markers, dictionaries, more than one record
batch, another codec, a big-endian schema, a buffer past the body, a zstd frame whose header
claims another size than the buffer's prefix or that has bytes after it, a decompression
error, a metadata Arrow refuses) returns ``None``: the caller then reads the body with
Arrow's own stream reader, whose result and error messages are therefore exactly what they
were. One refusal is this reader's own: buffers declaring more than
:data:`~sreagent.telemetry.batch.MAX_DECODED_BYTES` in total raise
:class:`~sreagent.errors.LimitExceeded` before anything past the cap is decompressed (Arrow's
reader has no such cap; a valid batch at every row limit stays far below it). Tests hold the two
readers to the same outcome on thousands of corrupted bodies. Flatbuffer layout: Arrow's ``format/Message.fbs`` and
``Schema.fbs``.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict

import pyarrow as pa
import pyarrow.ipc as ipc
import zstandard

from sreagent.errors import LimitExceeded
from sreagent.telemetry import batch as b

_CONTINUATION = 0xFFFFFFFF
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_BUFFER = struct.Struct("<qq")  # Buffer: offset, length
_HEAD = struct.Struct("<Ii")  # continuation marker, metadata length

# Message.fbs: the Message table's fields, and MessageHeader / CompressionType values
_MESSAGE_HEADER_TYPE, _MESSAGE_HEADER, _MESSAGE_BODY_LENGTH = 1, 2, 3
_SCHEMA, _RECORD_BATCH = 1, 3
_BATCH_BUFFERS, _BATCH_COMPRESSION = 2, 3
_ZSTD = 1
_ALIGN = 8  # Arrow's IPC buffers start at multiples of 8 bytes
_PADDING = [bytes(n) for n in range(_ALIGN)]

SCHEMA_CACHE_SIZE = 16
"""Distinct schema messages remembered (parsed once each). Collectors of one version send one;
the bound keeps a stream of odd ones from growing memory."""

SMALL_FRAME_BYTES = 64
SMALL_FRAME_OUTPUT_BYTES = 1024
SMALL_FRAMES_KEPT = 4096
"""Small zstd frames (at most 64 bytes, decompressing to at most 1 KiB: a tiny frame can
expand a lot) are remembered with their decompressed bytes, at most this many (all forgotten
at once when full: at most about 4.5 MiB). Most of a batch's ~60 buffers are tiny
and the same batch after batch from one collector (its identity strings, the offsets of
empty lists, the null inventory), so a dictionary lookup replaces most decompressions. The
key is the frame's exact bytes; a hit returns what decompressing those bytes returned."""

_small_frames: dict[bytes, bytes] = {}
_schemas: OrderedDict[bytes, pa.Schema] = OrderedDict()
_schemas_lock = threading.Lock()
_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    # a ZstdDecompressor is not safe to share between threads; one per thread, reused
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


class _NotQuick(Exception):
    """The body is outside the shape this reader handles: Arrow's reader takes it."""


def _field(meta: bytes | bytearray, table: int, index: int) -> int:
    """Position of a flatbuffer table's field ``index``, or 0 when absent."""
    vtable = table - _I32.unpack_from(meta, table)[0]
    slot = 4 + 2 * index
    if not 0 <= vtable <= len(meta) - 4 or slot >= _U16.unpack_from(meta, vtable)[0]:
        return 0
    offset = _U16.unpack_from(meta, vtable + slot)[0]
    return table + offset if offset else 0


def _follow(meta: bytes | bytearray, position: int) -> int:
    """Where the offset stored at ``position`` points (tables, vectors)."""
    offset: int = _U32.unpack_from(meta, position)[0]
    return position + offset


def _message(data: memoryview, position: int) -> tuple[bytes, int, int, int]:
    """The message at ``position``: (metadata, its root table, body start, body end)."""
    marker, size = _HEAD.unpack_from(data, position)
    if marker != _CONTINUATION or size <= 0:
        raise _NotQuick
    start = position + _HEAD.size
    meta = bytes(data[start:start + size])
    if len(meta) != size:
        raise _NotQuick
    root = _U32.unpack_from(meta, 0)[0]
    length_at = _field(meta, root, _MESSAGE_BODY_LENGTH)
    body_length = _I64.unpack_from(meta, length_at)[0] if length_at else 0
    body_start = start + size
    if body_length < 0 or body_start + body_length > len(data):
        raise _NotQuick
    return meta, root, body_start, body_start + body_length


def _header_type(meta: bytes, root: int) -> int:
    at = _field(meta, root, _MESSAGE_HEADER_TYPE)
    return meta[at] if at else 0


def _schema(meta: bytes, root: int) -> pa.Schema:
    with _schemas_lock:
        schema = _schemas.get(meta)
        if schema is not None:
            _schemas.move_to_end(meta)
            return schema
    header = _follow(meta, _field(meta, root, _MESSAGE_HEADER))
    endianness = _field(meta, header, 0)  # Schema.endianness: Little (0) unless written
    if endianness and _U16.unpack_from(meta, endianness)[0] != 0:
        raise _NotQuick
    schema = ipc.read_schema(pa.py_buffer(_HEAD.pack(_CONTINUATION, len(meta)) + meta))
    with _schemas_lock:
        _schemas[meta] = schema
        while len(_schemas) > SCHEMA_CACHE_SIZE:
            _schemas.popitem(last=False)
    return schema


def _decompressed_message(meta: bytes, root: int, body: memoryview) -> bytes:
    """The record batch message (marker, length, metadata, body) with every buffer
    decompressed, each starting at a multiple of 8 bytes as Arrow requires."""
    header = _follow(meta, _field(meta, root, _MESSAGE_HEADER))
    compression = _field(meta, header, _BATCH_COMPRESSION)
    if not compression:
        return _HEAD.pack(_CONTINUATION, len(meta)) + meta + body
    settings = _follow(meta, compression)
    codec, method = _field(meta, settings, 0), _field(meta, settings, 1)
    # codec's default (absent) is LZ4_FRAME; method's is BUFFER (0), the only one defined
    if not codec or meta[codec] != _ZSTD or (method and meta[method] != 0):
        raise _NotQuick
    buffers_at = _field(meta, header, _BATCH_BUFFERS)
    if not buffers_at:
        raise _NotQuick
    vector = _follow(meta, buffers_at)
    count = _U32.unpack_from(meta, vector)[0]
    spans = struct.unpack_from(f"<{2 * count}q", meta, vector + 4)  # (offset, length) pairs
    new_spans = [0] * (2 * count)  # an empty buffer: offset 0, length 0
    pieces: list[bytes | memoryview] = []
    append, unpack, limit = pieces.append, _I64.unpack_from, len(body)
    decompress, claimed = _decompressor().decompress, zstandard.frame_content_size
    position = total = 0
    # Plain lists and one loop over the used buffers, not numpy: about 200 buffers, most of
    # them empty, and numpy's per-call cost on arrays this small is more than the loop's.
    for i in [i for i in range(1, 2 * count, 2) if spans[i]]:
        offset, end = spans[i - 1], spans[i - 1] + spans[i]
        if offset < 0 or spans[i] < 8 or end > limit:
            raise _NotQuick
        # each buffer starts with its uncompressed length (-1: stored as it is)
        size = unpack(body, offset)[0]
        data: bytes | memoryview
        if size == -1:
            data = body[offset + 8:end]
            size = len(data)
        else:
            if size < 0:
                raise _NotQuick
            total += size
            if total > b.MAX_DECODED_BYTES:  # checked before decompressing, not after
                raise LimitExceeded(
                    f"the Arrow body's buffers expand past {b.MAX_DECODED_BYTES} bytes")
            packed = body[offset + 8:end]
            small = bytes(packed) if len(packed) <= SMALL_FRAME_BYTES else None
            known = _small_frames.get(small) if small is not None else None
            if known is not None:
                data = known
            else:
                # zstandard allocates what the frame's header claims: hold that to the
                # declared size first (and so to the cap), then demand exactly one frame,
                # as Arrow does
                if claimed(packed) not in (size, -1):
                    raise _NotQuick
                data = decompress(packed, size, False, False)  # max size, across, extra
                if small is not None and len(data) <= SMALL_FRAME_OUTPUT_BYTES:
                    if len(_small_frames) >= SMALL_FRAMES_KEPT:
                        _small_frames.clear()
                    _small_frames[small] = data
            if len(data) != size:
                raise _NotQuick
        append(data)
        new_spans[i - 1], new_spans[i] = position, size
        if pad := -size % _ALIGN:
            append(_PADDING[pad])
        position += size + pad
    patched = bytearray(meta)
    struct.pack_into(f"<{2 * count}q", patched, vector + 4, *new_spans)
    # the compression field is now absent: zero its slot in the record batch's vtable
    vtable = header - _I32.unpack_from(meta, header)[0]
    _U16.pack_into(patched, vtable + 4 + 2 * _BATCH_COMPRESSION, 0)
    _I64.pack_into(patched, _field(meta, root, _MESSAGE_BODY_LENGTH), position)
    return b"".join([_HEAD.pack(_CONTINUATION, len(patched)), patched, *pieces])


def read_one_batch(data: bytes) -> pa.RecordBatch | None:
    """The one record batch of a schema + record batch stream, or ``None`` when the body is
    not of that shape, or anything about it is odd (then Arrow's stream reader must read it,
    and names what is wrong)."""
    view = memoryview(data)
    try:
        meta, root, _, body_end = _message(view, 0)
        if _header_type(meta, root) != _SCHEMA:
            raise _NotQuick
        schema = _schema(meta, root)
        meta, root, body_start, end = _message(view, body_end)
        if _header_type(meta, root) != _RECORD_BATCH:
            raise _NotQuick
        # after the batch: the end-of-stream marker, or the end of the bytes
        if end != len(view) and (len(view) - end < 8 or _HEAD.unpack_from(view, end) != (
                _CONTINUATION, 0)):
            raise _NotQuick
        message = _decompressed_message(meta, root, view[body_start:end])
        return ipc.read_record_batch(pa.py_buffer(message), schema)
    except (_NotQuick, zstandard.ZstdError, struct.error, IndexError, ValueError, OSError,
            pa.ArrowException):
        return None
