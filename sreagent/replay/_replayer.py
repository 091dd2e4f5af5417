"""The Replayer: re-run a recorded chain from its evidence package and compare.

Shaped after temporal's workflow replayer: history in, the same decisions out, or a frozen
result naming the first artifact that differs, the field-level diff of its payload and the
inputs that led there. Recorded activity results (executions, model answers) are fed back,
never re-run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sreagent.artifacts import Artifact
from sreagent.chain import ChainConfig, ReplayActivities
from sreagent.errors import BadInput
from sreagent.evidence import EvidencePackage, verify_package
from sreagent.replay._decisions import DecisionDiff, WhatIfActivities, decision_diff
from sreagent.replay._record import RunInputs, package_views, run_chain

MAX_FIELD_DIFFS = 50


@dataclass(frozen=True)
class FieldDiff:
    """One leaf that differs between the recorded and the replayed artifact."""

    path: str
    """JSON path inside the envelope (``payload.hypotheses[0].score``)."""
    recorded: Any
    replayed: Any


@dataclass(frozen=True)
class Divergence:
    """Where a replay stopped matching the recording."""

    position: int
    """Index in the chain (0 = observation_summary)."""
    kind: str
    recorded_id: str | None
    replayed_id: str | None
    fields: tuple[FieldDiff, ...]
    inputs_identical: bool
    """Whether the artifact's inputs matched: False means an earlier divergence fed it."""
    reason: str

    def describe(self) -> str:
        head = f"artifact {self.position} ({self.kind}): {self.reason}"
        lines = [head] + [
            f"  {f.path}: recorded {json.dumps(f.recorded)} -> replayed {json.dumps(f.replayed)}"
            for f in self.fields[:10]
        ]
        if len(self.fields) > 10:
            lines.append(f"  ... {len(self.fields) - 10} more fields")
        return "\n".join(lines)


@dataclass(frozen=True)
class ReplayResult:
    """The frozen outcome of replaying one package.

    ``recorded`` (the recorded artifacts as models) is built on first use: an identical
    replay is decided on the artifact ids alone, which verification already checked against
    the stored content, so the recorded models are not rebuilt unless someone reads them.
    """

    package: str
    run_id: str
    identical: bool
    divergences: tuple[Divergence, ...]
    recorded_ids: tuple[str, ...]
    """The recorded artifacts' ids in chain order."""
    replayed: tuple[Artifact, ...] = field(repr=False)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    decisions: DecisionDiff | None = None
    load_recorded: Callable[[], Sequence[Artifact]] = field(
        default=tuple, repr=False, compare=False)
    """Builds the recorded artifacts (the package's, validated) when ``recorded`` is read."""

    @cached_property
    def recorded(self) -> tuple[Artifact, ...]:
        """The recorded artifacts, in chain order."""
        return tuple(self.load_recorded())

    @property
    def first_divergence(self) -> Divergence | None:
        return self.divergences[0] if self.divergences else None

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "run_id": self.run_id,
            "identical": self.identical,
            "artifacts": len(self.recorded_ids),
            "overrides": dict(self.overrides),
            "divergences": [
                {
                    "position": d.position,
                    "kind": d.kind,
                    "recorded_id": d.recorded_id,
                    "replayed_id": d.replayed_id,
                    "reason": d.reason,
                    "inputs_identical": d.inputs_identical,
                    "fields": [
                        {"path": f.path, "recorded": f.recorded, "replayed": f.replayed}
                        for f in d.fields
                    ],
                }
                for d in self.divergences
            ],
            "decisions": self.decisions.to_json() if self.decisions else None,
        }


def apply_overrides(config: ChainConfig, overrides: Mapping[str, Any]) -> ChainConfig:
    """``config`` with dotted keys replaced (``detection.z_open``, ``posture.dry_run``)."""
    data = config.model_dump(mode="json")
    for key, value in overrides.items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise BadInput(
                    f"no configuration section {part!r} (keys are in docs/roles.md)", field=key
                )
            node = node[part]
        if parts[-1] not in node:
            raise BadInput(
                f"no configuration key {parts[-1]!r} in {'.'.join(parts[:-1]) or 'the chain'}",
                field=key,
            )
        node[parts[-1]] = value
    try:
        return ChainConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise BadInput(first["msg"], field=".".join(map(str, first["loc"]))) from None


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as JSON when it parses (numbers, true, lists)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise BadInput(f"an override is KEY=VALUE, got {text!r}", field="--set")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _leaf_diffs(recorded: Any, replayed: Any, path: str, out: list[FieldDiff]) -> None:
    if len(out) >= MAX_FIELD_DIFFS:
        return
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        for key in sorted(set(recorded) | set(replayed)):
            _leaf_diffs(recorded.get(key), replayed.get(key), f"{path}.{key}" if path else key, out)
    elif isinstance(recorded, list) and isinstance(replayed, list):
        for i in range(max(len(recorded), len(replayed))):
            _leaf_diffs(
                recorded[i] if i < len(recorded) else None,
                replayed[i] if i < len(replayed) else None,
                f"{path}[{i}]",
                out,
            )
    elif recorded != replayed:
        out.append(FieldDiff(path, recorded, replayed))


def compare(
    recorded: Sequence[Artifact], replayed: Sequence[Artifact], *, collect_all: bool = False
) -> tuple[Divergence, ...]:
    """Compare two chains artifact by artifact (the first divergence, or all of them)."""
    found: list[Divergence] = []
    for position in range(max(len(recorded), len(replayed))):
        old = recorded[position] if position < len(recorded) else None
        new = replayed[position] if position < len(replayed) else None
        if old is not None and new is not None and old.artifact_id == new.artifact_id:
            continue
        if old is None or new is None:
            present = new or old
            assert present is not None
            divergence = Divergence(
                position,
                present.kind.value,
                old.artifact_id if old else None,
                new.artifact_id if new else None,
                (),
                inputs_identical=False,
                reason="the replay produced no such artifact"
                if new is None
                else "the recording has no such artifact (the replay went further)",
            )
        else:
            fields: list[FieldDiff] = []
            _leaf_diffs(
                old.model_dump(mode="json", exclude={"artifact_id"}),
                new.model_dump(mode="json", exclude={"artifact_id"}),
                "",
                fields,
            )
            same_inputs = old.input_artifact_ids == new.input_artifact_ids
            reason = (
                "different content from the same inputs"
                if same_inputs
                else "its inputs differ (an earlier artifact diverged)"
            )
            if old.kind != new.kind:
                reason = f"kind {old.kind.value} was recorded, {new.kind.value} replayed"
            divergence = Divergence(
                position,
                old.kind.value,
                old.artifact_id,
                new.artifact_id,
                tuple(fields),
                same_inputs,
                reason,
            )
        found.append(divergence)
        if not collect_all:
            break
    return tuple(found)


class Replayer:
    """Replays evidence packages of recorded chain runs.

    ``overrides`` turn a replay into a what-if: the chain runs with those configuration keys
    changed and the result carries a decision diff. ``collect_all`` lists every divergence
    instead of stopping at the first. ``verify`` checks each package completely first.
    """

    def __init__(
        self,
        *,
        overrides: Mapping[str, Any] | None = None,
        collect_all: bool = False,
        verify: bool = True,
    ):
        self.overrides = dict(overrides or {})
        self.collect_all = collect_all
        self.verify = verify

    def replay(self, path: Path | str) -> ReplayResult:
        root = Path(path)
        # Verification decodes every table and artifact; its package hands them on, so a
        # verified replay reads each file once.
        package = (verify_package(root, artifact_models=False).package if self.verify
                   else None) or EvidencePackage(root)
        inputs = RunInputs.from_config(package.config, path=str(root / "config.json"))
        config = apply_overrides(inputs.chain, self.overrides) if self.overrides else None
        view, verify_view = package_views(package, inputs)
        records = package.activities
        activities = WhatIfActivities(records) if self.overrides else ReplayActivities(records)
        result = run_chain(inputs, view, verify_view, activities=activities, config=config)
        recorded_ids = package.artifact_ids
        same = recorded_ids == tuple(a.artifact_id for a in result.artifacts)
        # Equal ids are equal content (ids are content hashes, checked by verification):
        # only a divergence or a what-if needs the recorded artifacts as models.
        divergences = () if same else compare(
            package.artifacts, result.artifacts, collect_all=self.collect_all)
        return ReplayResult(
            package=str(root),
            run_id=inputs.run_id,
            identical=not divergences,
            divergences=divergences,
            recorded_ids=recorded_ids,
            replayed=result.artifacts,
            overrides=self.overrides,
            decisions=decision_diff(package.artifacts, result.artifacts)
            if self.overrides else None,
            load_recorded=lambda: package.artifacts,
        )

    def replay_all(self, paths: Iterable[Path | str]) -> list[ReplayResult]:
        return [self.replay(p) for p in paths]
