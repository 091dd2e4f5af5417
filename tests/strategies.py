"""Hypothesis strategies derived from the pydantic models themselves.

Deriving them from the field annotations (types, lengths, patterns, bounds) means a new field
is covered by the property tests the day it is added, with no second description to keep in
step.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

import annotated_types as at
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

# Models with cross-field rules get their draws fixed up before validation.
_FIXUPS: dict[str, Any] = {
    "EvidenceRef": lambda d: {
        **d,
        "start_ns": min(d["start_ns"], d["end_ns"]),
        "end_ns": max(d["start_ns"], d["end_ns"]),
    },
}


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    flat: list[Any] = []
    for item in metadata:
        flat.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    for item in flat:
        for name in (
            "min_length",
            "max_length",
            "pattern",
            "ge",
            "gt",
            "le",
            "lt",
            "allow_inf_nan",
        ):
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
        if isinstance(item, at.MaxLen):
            found["max_length"] = item.max_length
        if isinstance(item, at.MinLen):
            found["min_length"] = item.min_length
    return found


def _for_annotation(annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _for_annotation(args[0], [*metadata, *args[1:]])
    limits = _constraints(metadata)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(
            [_for_annotation(a, metadata if a is not type(None) else []) for a in args]
        )
    if annotation is type(None):
        return st.none()
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is list:
        item = _for_annotation(args[0], [])
        return st.lists(
            item, min_size=limits.get("min_length", 0), max_size=min(limits.get("max_length", 4), 4)
        )
    if origin is dict:
        key = _for_annotation(args[0], [])
        value = _for_annotation(args[1], [])
        return st.dictionaries(key, value, max_size=min(limits.get("max_length", 3), 3))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.sampled_from(list(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_strategy(annotation)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low = limits.get("ge", limits.get("gt", -(2**63) + 1) + (1 if "gt" in limits else 0))
        high = limits.get("le", limits.get("lt", 2**63) - 1)
        return st.integers(min_value=low, max_value=min(high, 2**62))
    if annotation is float:
        low = limits.get("ge", limits.get("gt"))
        high = limits.get("le", limits.get("lt"))
        return st.floats(
            min_value=low,
            max_value=high,
            allow_nan=False,
            allow_infinity=False,
            exclude_min="gt" in limits,
            exclude_max="lt" in limits,
        )
    if annotation is str:
        low = limits.get("min_length", 0)
        high = min(limits.get("max_length", 12), 12)
        if "pattern" in limits:
            return st.from_regex(limits["pattern"], fullmatch=True).filter(
                lambda s: low <= len(s) <= limits.get("max_length", 10**9)
            )
        return st.text(
            alphabet=st.characters(blacklist_categories=("Cs",)),
            min_size=low,
            max_size=max(high, low),
        )
    raise TypeError(f"no strategy for {annotation!r}")


def field_strategy(field: FieldInfo) -> st.SearchStrategy[Any]:
    return _for_annotation(field.annotation, list(field.metadata))


def model_strategy(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    """Valid instances of ``model``: every field drawn from its own constraints."""
    fields = {name: field_strategy(info) for name, info in model.model_fields.items()}
    fixup = _FIXUPS.get(model.__name__, lambda d: d)
    return st.fixed_dictionaries(fields).map(lambda d: model.model_validate(fixup(d)))
