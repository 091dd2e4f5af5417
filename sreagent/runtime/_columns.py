"""Numbering the key columns of telemetry rows without hashing a million strings.

The evidence view groups sample rows by (metric, entity, label set) and orders the groups by
those strings. A package's key columns are dictionary-encoded on disk and read as Arrow
dictionaries, so each row already carries a small integer: the rows are grouped by those
integers alone, and only the distinct groups (hundreds) are ever turned back into strings
and sorted. Plain string columns (a view built from batch frames) are dictionary-encoded
first and then take the same path.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DENSE_LIMIT = 1 << 24
"""Largest code space renumbered through a dense table; beyond it, by sorting."""

EXACT_INT = 1 << 62
"""Label-set numbers stay below this, so sums of their digits never overflow an int64."""

LabelSet = tuple[tuple[str, str], ...]


def chunks(column: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    """The column's non-empty chunks; plain (not dictionary) chunks joined into one, so a
    table built from a thousand frames is encoded in one call, not a thousand."""
    if not isinstance(column, pa.ChunkedArray):
        return [column]
    if column.num_chunks > 1 and not _has_dictionary(column.type):
        return [column.combine_chunks()]
    return [c for c in column.chunks if len(c)] or [pa.array([], column.type)]


def _has_dictionary(type_: pa.DataType) -> bool:
    if pa.types.is_dictionary(type_):
        return True
    return bool(pa.types.is_map(type_) and (pa.types.is_dictionary(type_.key_type)
                                            or pa.types.is_dictionary(type_.item_type)))


def _encoded(chunk: pa.Array) -> pa.DictionaryArray:
    if not pa.types.is_dictionary(chunk.type):
        chunk = pc.dictionary_encode(chunk)
    if chunk.null_count:
        # The contract forbids nulls here; read one as the empty string rather than fail
        # half-way through numbering.
        chunk = pc.dictionary_encode(pc.fill_null(chunk.cast(pa.string()), ""))
    assert isinstance(chunk, pa.DictionaryArray)
    return chunk


def codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """Per-row codes of a string or dictionary column and the strings they stand for
    (a row's string is ``names[code]``; in no particular order, possibly with entries no
    row uses, since a dictionary keeps what a filter dropped).

    Chunks sharing one dictionary (a Parquet column chunk read in pieces) use its indices
    as they are; chunks with different dictionaries, or a dictionary holding a string twice,
    are mapped onto their union, so one string always has one code.
    """
    encoded = [_encoded(c) for c in chunks(column)]
    first = encoded[0].dictionary
    if all(c.dictionary.equals(first) for c in encoded[1:]):
        names = first.to_pylist()
        if len(set(names)) == len(names):  # Arrow allows a dictionary to repeat itself
            parts = [c.indices.to_numpy(zero_copy_only=False) for c in encoded]
            return (np.concatenate(parts) if len(parts) > 1 else parts[0]), names
    number: dict[str, int] = {}
    mapped = []
    for chunk in encoded:
        words = chunk.dictionary.to_pylist()
        local = np.fromiter((number.setdefault(w, len(number)) for w in words), np.int64,
                            len(words))
        mapped.append(local[chunk.indices.to_numpy(zero_copy_only=False)])
    return np.concatenate(mapped), list(number)


def dense_renumber(key: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``key`` (ascending, all below ``space``) and each row's index
    among them: ``np.unique(key, return_inverse=True)`` without a sort when the space is
    small enough for a table."""
    if space <= DENSE_LIMIT:
        present = np.flatnonzero(np.bincount(key, minlength=space))
        number = np.empty(space, np.int64)
        number[present] = np.arange(present.shape[0], dtype=np.int64)
        return present, number[key]
    present, inverse = np.unique(key, return_inverse=True)
    return present, inverse.reshape(-1)


def label_set_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[LabelSet]]:
    """Per-row codes of a ``map<string, string>`` column (string or dictionary keys and
    values) and the label set each code stands for (in no particular order).

    Each (key, value) pair gets a number; a row's set is the sequence of its pairs (keys
    arrive sorted from the contract), written as one number in base (pairs + 1), so equal
    sets get equal numbers. Only the distinct sets are spelled out as strings.
    """
    maps = chunks(column)
    parts, keys, items = [], [], []
    flat = 0
    for chunk in maps:
        offsets = chunk.offsets.to_numpy()
        # A chunk may be a slice of a larger array: its offsets index that array's children.
        first, last = int(offsets[0]), int(offsets[-1])
        parts.append(offsets[:-1].astype(np.int64) + (flat - first))
        keys.append(chunk.keys.slice(first, last - first))
        items.append(chunk.items.slice(first, last - first))
        flat += last - first
    n = sum(len(c) for c in maps)
    if not flat:
        return np.zeros(n, np.int64), [()]
    # Where each row's entries begin in the chunks' entries laid end to end, and the end.
    bounds = np.concatenate([*parts, np.array([flat], np.int64)])
    start, length = bounds[:-1], np.diff(bounds)
    key_codes, key_names = codes(pa.chunked_array(keys))
    value_codes, value_names = codes(pa.chunked_array(items))
    pairs, pair = dense_renumber(np.multiply(key_codes, len(value_names), dtype=np.int64)
                                 + value_codes,
                                 len(key_names) * len(value_names))
    base = pairs.shape[0] + 1
    longest = int(length.max())
    if base ** longest < EXACT_INT:
        # Each row's set as one number in base (pairs + 1), its pairs the digits: every
        # entry's digit at its position, summed per row as a difference of running sums.
        position = np.arange(flat, dtype=np.int64) - np.repeat(start, length)
        digit = (pair + 1) * (base ** np.arange(longest, dtype=np.int64))[position]
        running = np.zeros(flat + 1, np.int64)
        np.cumsum(digit, out=running[1:])
        numbers, row_set = dense_renumber(np.diff(running[bounds]), base ** longest)
        sets = [_spell(number, base, pairs, key_names, value_names)
                for number in numbers.tolist()]
        return row_set, sets
    # Too many distinct pairs for one number: fold position by position, renumbering
    # densely after each (0: the set ended before this position).
    row_set = np.zeros(n, np.int64)
    distinct = 1
    for at in range(longest):
        has = length > at
        step = np.zeros(n, np.int64)
        step[has] = pair[start[has] + at] + 1
        _, row_set = dense_renumber(row_set * base + step, distinct * base)
        distinct = int(row_set.max()) + 1
    example = np.empty(distinct, np.int64)
    example[row_set] = np.arange(n, dtype=np.int64)  # one row of each set spells it out
    sets = []
    for r in example.tolist():
        lo, hi = int(start[r]), int(start[r] + length[r])
        sets.append(tuple((key_names[k], value_names[v]) for k, v in
                          zip(key_codes[lo:hi].tolist(), value_codes[lo:hi].tolist(),
                              strict=True)))
    return row_set, sets


def _spell(number: int, base: int, pairs: np.ndarray, key_names: list[str],
           value_names: list[str]) -> LabelSet:
    """The label set a number in base (pairs + 1) stands for (digit 0 ends it)."""
    out = []
    while number:
        number, digit = divmod(number, base)
        key, value = divmod(int(pairs[digit - 1]), len(value_names))
        out.append((key_names[key], value_names[value]))
    return tuple(out)


def label_text(labels: LabelSet) -> str:
    """A label set as the ``k=v\\x1fk=v`` text series are ordered by."""
    return "\x1f".join(f"{k}={v}" for k, v in labels)


def without_dictionaries(table: pa.Table) -> pa.Table:
    """``table`` with its dictionary columns decoded to their values (the table itself when
    it has none)."""
    if not any(pa.types.is_dictionary(f.type) for f in table.schema):
        return table
    return table.cast(pa.schema([
        f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
        for f in table.schema]))


def distinct_strings(column: pa.ChunkedArray | pa.Array) -> list[str]:
    """The sorted distinct strings a string or dictionary column's rows hold."""
    found: set[str] = set()
    for chunk in chunks(column):
        if pa.types.is_dictionary(chunk.type):
            used = pc.unique(chunk.indices.drop_null())
            found.update(chunk.dictionary.take(used).to_pylist())
        else:
            found.update(pc.unique(chunk.drop_null()).to_pylist())
    return sorted(found)


def equals(column: pa.ChunkedArray | pa.Array, value: str) -> pa.ChunkedArray:
    """Row mask of a string or dictionary column equal to ``value`` (compared once per
    dictionary entry, not per row, for a dictionary column)."""
    out = []
    for chunk in chunks(column):
        if pa.types.is_dictionary(chunk.type):
            out.append(pc.equal(chunk.dictionary, value).take(chunk.indices))
        else:
            out.append(pc.equal(chunk, value))
    return pa.chunked_array(out, pa.bool_())
