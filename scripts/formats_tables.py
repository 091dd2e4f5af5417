"""Print the field tables of docs/formats.md from the contract models (a drafting aid).

docs/formats.md is written by hand around these tables; tests/test_docs.py checks that every
field of every contract model is documented there and that nothing documented is gone.
Run: .venv/bin/python scripts/formats_tables.py > /tmp/tables.md
"""

from __future__ import annotations

import enum
import json
import types
import typing

from pydantic import BaseModel

from sreagent.artifacts import models as am
from sreagent.evidence import package as pk
from sreagent.telemetry import batch as tb

CONTRACT_MODELS: list[type[BaseModel]] = [
    tb.Batch,
    tb.Sample,
    tb.ProcessRow,
    tb.Event,
    tb.SourceCapability,
    tb.Inventory,
    tb.DiskInfo,
    tb.NicInfo,
    tb.GpuInfo,
    tb.IbPortInfo,
    am.Artifact,
    am.EvidenceRef,
    am.ObservationSummary,
    am.SignalSummary,
    am.DataQuality,
    am.AnomalyFinding,
    am.Finding,
    am.IncidentState,
    am.RootCauseHypothesis,
    am.Hypothesis,
    am.RemediationProposal,
    am.ProposedAction,
    am.ExecutionPlan,
    am.Posture,
    am.PlanDecision,
    am.ExecutionResult,
    am.ActionResult,
    am.VerificationResult,
    am.Verdict,
    am.IncidentReport,
    am.TimelineEntry,
    am.SimilarIncident,
    pk.Manifest,
    pk.FileEntry,
    pk.ActivityRecord,
]


def _limits(metadata: list[typing.Any]) -> list[str]:
    out = []
    for item in metadata:
        inner = getattr(item, "metadata", None)
        if isinstance(inner, list):
            out += _limits(inner)
        for name in ("min_length", "max_length", "pattern", "ge", "gt", "le", "lt"):
            value = getattr(item, name, None)
            if value is not None:
                if isinstance(value, int) and value >= 2**31:
                    value = f"2^{value.bit_length() - 1}"
                out.append(f"{name} {value}")
    return out


def type_name(annotation: typing.Any) -> tuple[str, list[str]]:
    """A short type name and the limits found inside the annotation."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        name, limits = type_name(args[0])
        return name, _limits(list(args[1:])) + limits
    if origin in (typing.Union, types.UnionType):
        parts = [type_name(a) for a in args if a is not type(None)]
        name = " or ".join(p[0] for p in parts)
        return (f"{name} or null" if type(None) in args else name), [x for p in parts for x in p[1]]
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args), []
    if origin is list:
        inner, limits = type_name(args[0])
        return f"list of {inner}", limits
    if origin is dict:
        key, key_limits = type_name(args[0])
        value, value_limits = type_name(args[1])
        return f"map {key} to {value}", [f"key {x}" for x in key_limits] + [
            f"value {x}" for x in value_limits
        ]
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return "one of " + ", ".join(f"`{m.value}`" for m in annotation), []
        return (
            f"`{annotation.__name__}`" if issubclass(annotation, BaseModel) else annotation.__name__
        ), []
    return repr(annotation), []


def _default(value: typing.Any) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    return json.dumps(value) if not isinstance(value, BaseModel) else "{...}"


def table(model: type[BaseModel]) -> str:
    lines = [
        f"### `{model.__name__}`",
        "",
        "| field | type | limits | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in model.model_fields.items():
        default = "" if field.is_required() else f" Default `{_default(field.default)}`."
        kind, inner = type_name(field.annotation)
        limits = "; ".join(_limits(list(field.metadata)) + inner)
        text = (field.description or "").replace("\n", " ").replace("``", "`")
        lines.append(f"| `{name}` | {kind} | {limits} | {text}{default} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n\n".join(table(m) for m in CONTRACT_MODELS))
