"""The canonical JSON of a batch's row tables, written column by column from Arrow.

:func:`sreagent.telemetry.wire.batch_digest` hashes the canonical JSON of ``{"events": {...},
"header": {...}, "processes": {...}, "samples": {...}}`` (keys sorted, no white space, floats
in Python's shortest repr, label maps as ``[key, value]`` pairs sorted per row). Building that
from ``Table.to_pydict()`` makes a Python object per value (a list of tuples per label map)
and sorts every map in Python. This module writes the same bytes from the columns:

* empty tables (most batches carry no processes or events): their JSON depends only on the
  column names, so it is built once per schema;
* strings with repeats (metric and entity names): each *distinct* string is JSON-encoded
  once with the encoder ``canonical_json`` uses, and the pieces are put in row order by one
  Arrow ``take`` over the dictionary codes and joined in C; columns of mostly distinct strings
  go through that encoder directly, which is cheaper there;
* integers: Arrow's int-to-string cast (plain decimal digits, what ``int.__repr__`` writes);
* floats: the JSON encoder over the column's values, i.e. ``float.__repr__`` per value in C
  (Python's shortest round-trip form; no vectorised equivalent is provably identical); when
  most values repeat, each distinct bit pattern is formatted once instead (bit patterns keep
  ``0.0`` and ``-0.0`` apart);
* label maps: nothing to sort when no row has labels (the usual case); otherwise the pairs are
  ordered per row with one ``numpy.lexsort`` on (row, key rank, value rank), ranks from Arrow's
  byte-order sort (UTF-8 byte order is code-point order, which is Python's ``str`` order).

The output goes straight into the hash in pieces (Arrow buffers included), never joined into
one string. The previous Python-object implementation stays in the tests as the oracle and is
compared with this one on randomised tables, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from json.encoder import encode_basestring
from operator import itemgetter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sreagent.telemetry._column_cache import STRING_COLUMNS, column_key

Emit = Callable[[bytes | memoryview], object]
"""Where the canonical bytes go: ``hashlib`` object's ``update``, or a list's ``append``."""

ROW_TABLES = ("events", "processes", "samples")
"""The row tables in canonical key order (``"header"`` sorts between events and processes)."""
_NULL = pa.scalar("null", pa.string())
COLUMNAR_FROM_ROWS = 1024
"""Below this many rows a column goes through the JSON encoder as Python values: each Arrow
kernel call costs tens of microseconds, more than the encoder spends on a few hundred values
(measured on the 2-core machine: a 500-row column 1.3-2.6x slower columnar, a 5,000-row one
1.8-4x faster). Empty tables and label maps without labels take their shortcuts at any size."""
_DISTINCT_SHARE = 0.5
"""Encode per distinct value when at most this share of a column's values is distinct."""


def _dumps(values: list[object]) -> bytes:
    # canonical_json's own encoder settings, so the bytes are those it would write
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _emit_joined(emit: Emit, pieces: pa.Array, separator: str = ",") -> None:
    """Emit ``[`` + ``separator.join(pieces)`` + ``]`` with the join done in C; the joined
    bytes are handed over as the result buffer, without a Python string."""
    emit(b"[")
    if len(pieces):
        whole = pa.ListArray.from_arrays(pa.array([0, len(pieces)], pa.int32()), pieces)
        joined = pc.binary_join(whole, separator)
        offsets = np.frombuffer(joined.buffers()[1], np.int32)
        data = joined.buffers()[2]
        if data is not None:
            emit(memoryview(data)[offsets[joined.offset]: offsets[joined.offset + 1]])
    emit(b"]")


def _string_pieces(values: pa.Array,
                   encoded: pa.DictionaryArray | None = None) -> pa.Array:
    """Each distinct string JSON-encoded once, laid out in row order; nulls as ``null``."""
    encoded = values.dictionary_encode() if encoded is None else encoded
    pieces = pa.array([encode_basestring(v) for v in encoded.dictionary.to_pylist()],
                      pa.string()).take(encoded.indices)
    return pc.fill_null(pieces, _NULL) if pieces.null_count else pieces


def _emit_strings(emit: Emit, values: pa.Array) -> None:
    encoded = values.dictionary_encode()
    if len(encoded.dictionary) <= _DISTINCT_SHARE * len(values):
        _emit_joined(emit, _string_pieces(values, encoded))
    else:
        emit(_dumps(values.to_pylist()))


def _emit_floats(emit: Emit, values: pa.Array) -> None:
    """The JSON of a float64 column: ``float.__repr__`` per value (what the JSON encoder
    writes for a finite float, CPython's _json.c); when most values repeat, each distinct
    bit pattern (``0.0`` and ``-0.0`` differ) is formatted once and the texts are put in row
    order. A non-finite value raises ``ValueError``, as the encoder does."""
    bits = values.view(pa.int64()).dictionary_encode()
    if values.null_count or len(bits.dictionary) > _DISTINCT_SHARE * len(values):
        emit(_dumps(values.to_pylist()))
        return
    distinct = bits.dictionary.view(pa.float64())
    if not np.isfinite(distinct.to_numpy()).all():
        raise ValueError("a non-finite float")  # what the JSON encoder raises for one
    texts = list(map(float.__repr__, distinct.to_pylist()))
    if len(values) < COLUMNAR_FROM_ROWS:  # a Python join beats Arrow's calls at this size
        # itemgetter puts the texts in row order in C (at least 2 rows reach here: one row
        # is one distinct value, more than half)
        in_order = itemgetter(*bits.indices.to_numpy().tolist())(texts)
        emit(("[" + ",".join(in_order) + "]").encode())
    else:
        _emit_joined(emit, pa.array(texts, pa.string()).take(bits.indices))


def _emit_column(emit: Emit, column: pa.ChunkedArray | pa.Array) -> None:
    values = column
    if isinstance(column, pa.ChunkedArray):  # combine_chunks copies even a single chunk
        values = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    kind = values.type
    if len(values) == 0:
        emit(b"[]")
    elif pa.types.is_map(kind):
        _emit_labels(emit, values)
    elif pa.types.is_string(kind):
        _emit_strings_remembered(emit, values)
    elif pa.types.is_float64(kind):
        _emit_floats(emit, values)
    elif len(values) < COLUMNAR_FROM_ROWS:
        if pa.types.is_integer(kind) and not values.null_count:
            # %d writes an int as int.__repr__ does, what the JSON encoder writes, without
            # the encoder's per-item dispatch (about 30 % less time on 500 values)
            emit((_ints_format(len(values)) % tuple(values.to_pylist())).encode())
        else:
            emit(_dumps(values.to_pylist()))
    elif pa.types.is_integer(kind):
        text = pc.cast(values, pa.string())
        _emit_joined(emit, pc.fill_null(text, _NULL) if text.null_count else text)
    else:  # no other type occurs in the row schemas; stay correct if one is added
        emit(_dumps(values.to_pylist()))


def _emit_strings_remembered(emit: Emit, values: pa.Array) -> None:
    """A string column's JSON, remembered per distinct column (metric and entity columns
    repeat batch after batch: :mod:`sreagent.telemetry._column_cache`)."""
    key = column_key(values)
    known = STRING_COLUMNS.get(key, "json")
    if known is not None:
        emit(known)
        return
    if len(values) < COLUMNAR_FROM_ROWS:
        text = _dumps(values.to_pylist())
    else:
        pieces: list[bytes] = []
        _emit_strings(lambda piece: pieces.append(bytes(piece)), values)
        text = b"".join(pieces)
    STRING_COLUMNS.put(key, "json", text)
    emit(text)


def _emit_labels(emit: Emit, labels: pa.MapArray) -> None:
    """``[[["k","v"],...],...]``: per row the pairs sorted by (key, value), ``[]`` when none
    (a null map too, as the Python path writes it)."""
    rows = len(labels)
    if len(labels.keys) == 0:  # no row has a pair (the usual case)
        emit(_no_labels_json(rows))
        return
    valid = np.ones(rows, bool) if labels.null_count == 0 else np.asarray(
        labels.is_valid()).astype(bool)
    offsets = np.asarray(labels.offsets)
    counts = np.where(valid, np.diff(offsets), 0)
    if not counts.any():
        emit(_no_labels_json(rows))
        return
    if rows < COLUMNAR_FROM_ROWS:  # Arrow's per-call cost outweighs sorting a few maps
        emit(_dumps([sorted(pairs) if pairs else [] for pairs in labels.to_pylist()]))
        return
    # Gather the pairs of the valid rows (a null row's slot may still point at pairs).
    take = np.concatenate([np.arange(offsets[i], offsets[i] + counts[i])
                           for i in np.flatnonzero(counts)]) if labels.null_count else \
        np.arange(offsets[0], offsets[-1])
    keys, items = labels.keys.take(pa.array(take)), labels.items.take(pa.array(take))
    relative = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    parents = np.repeat(np.arange(rows), counts)
    key_rank = np.asarray(pc.rank(keys, sort_keys="ascending", tiebreaker="dense"))
    item_rank = np.asarray(pc.rank(items, sort_keys="ascending", tiebreaker="dense"))
    order = pa.array(np.lexsort((item_rank, key_rank, parents)))
    pairs = pc.binary_join_element_wise(_string_pieces(keys).take(order),
                                        _string_pieces(items).take(order), ",")
    # '"k1","v1"],["k2","v2"' per row, then wrapped as '[["k1","v1"],["k2","v2"]]'
    per_row = pc.binary_join(pa.ListArray.from_arrays(pa.array(relative), pairs), "],[")
    wrapped = pc.binary_join_element_wise("[[", per_row, "]]", "")
    _emit_joined(emit, pc.if_else(pa.array(counts == 0), pa.scalar("[]"), wrapped))


@lru_cache(maxsize=64)
def _ints_format(rows: int) -> str:
    return "[" + ",".join(["%d"] * rows) + "]"


@lru_cache(maxsize=64)
def _no_labels_json(rows: int) -> bytes:
    return b"[" + b",".join([b"[]"] * rows) + b"]"


@lru_cache(maxsize=32)
def _empty_table_json(names: tuple[str, ...]) -> bytes:
    return json.dumps({name: [] for name in names}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def emit_table(emit: Emit, table: pa.Table) -> None:
    """Emit the canonical JSON of ``{column: [values]}`` for one row table."""
    if table.num_rows == 0:
        emit(_empty_table_json(tuple(table.column_names)))
        return
    columns = table.columns  # in schema order; written in name order
    for index, head in _column_heads(tuple(table.column_names)):
        emit(head)
        _emit_column(emit, columns[index])
    emit(b"}")


@lru_cache(maxsize=32)
def _column_heads(names: tuple[str, ...]) -> list[tuple[int, bytes]]:
    """(column index, ``{"name":`` or ``,"name":``) in the canonical (sorted) key order."""
    order = sorted(range(len(names)), key=names.__getitem__)
    return [(index, ("{" if i == 0 else ",").encode() + encode_basestring(names[index]).encode()
             + b":") for i, index in enumerate(order)]


def emit_frame(emit: Emit, header_json: bytes, tables: dict[str, pa.Table]) -> None:
    """Emit the canonical JSON of a whole frame, given its header's canonical JSON."""
    emit(b'{"events":')
    emit_table(emit, tables["events"])
    emit(b',"header":')
    emit(header_json)
    emit(b',"processes":')
    emit_table(emit, tables["processes"])
    emit(b',"samples":')
    emit_table(emit, tables["samples"])
    emit(b"}")
