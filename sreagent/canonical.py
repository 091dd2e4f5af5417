"""Canonical serialisation: one byte string per value, so hashes mean something.

Rules (documented in docs/formats.md): UTF-8 JSON, object keys sorted, no insignificant
white space, no NaN or infinity, floats in Python's shortest round-trip form, integers as
integers. Two equal values always serialise to the same bytes, on any machine, in any time
zone or locale.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from sreagent.errors import NonFiniteValue


def _reject_non_finite(value: Any, path: str = "$") -> None:
    # json.dumps(allow_nan=False) says only "Out of range float values"; name the place instead.
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NonFiniteValue(f"{value!r} is not a finite number", field=path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_non_finite(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _reject_non_finite(item, f"{path}[{index}]")


def canonical_json(value: Any) -> bytes:
    """Serialise a JSON-ready value (dicts, lists, str, int, float, bool, None) canonically."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError:
        _reject_non_finite(value)
        raise
    return text.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def canonical_digest(value: Any) -> str:
    """SHA-256 of the canonical serialisation of ``value``."""
    return sha256_hex(canonical_json(value))
