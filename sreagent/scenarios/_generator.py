"""Generate a scenario: world -> bursts, restarts, faults -> metrics -> batch frames + truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from sreagent.scenarios._baseline import apply_bursts, apply_restarts
from sreagent.scenarios._classes import FaultClass, RemediationFamily
from sreagent.scenarios._derive import SeriesBook, derive
from sreagent.scenarios._emit import build_frames
from sreagent.scenarios._faults import INJECTORS
from sreagent.scenarios._profiles import HostProfile, builtin_profile
from sreagent.scenarios._schema import ScenarioDefinition
from sreagent.scenarios._stats import baseline_band, first_deviation
from sreagent.scenarios._world import build_world
from sreagent.telemetry.arrow import BatchFrame

GENERATOR_VERSION = "sreagent.scenarios.generator/1"
"""Bumped whenever the same definition and seed would give different telemetry."""


@dataclass(frozen=True)
class TruthCause:
    """One root cause as it happened in the generated telemetry."""

    entity: str
    fault_class: FaultClass
    remediation: RemediationFamily
    cited_metrics: tuple[str, ...]
    onset_ns: int
    """When the fault was injected."""
    visible_ns: int | None
    """First sample at which a cited metric (or the fault's event) departs from its baseline."""
    end_ns: int | None
    """When the fault cleared (None: still active at the end)."""
    window: tuple[int, int]
    """Steps ``[start, end)`` in which the fault is fully visible (used by the tests)."""

    @property
    def visible_step_offset(self) -> int | None:
        """Samples from onset to visibility."""
        return None if self.visible_ns is None else self.visible_ns - self.onset_ns

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity, "fault_class": str(self.fault_class),
            "remediation": str(self.remediation), "cited_metrics": list(self.cited_metrics),
            "onset_ns": self.onset_ns, "visible_ns": self.visible_ns, "end_ns": self.end_ns,
            "window_steps": list(self.window),
        }


@dataclass(frozen=True)
class GroundTruthResolved:
    """The answer key of a generated scenario (what the role chain is scored against)."""

    scenario_id: str
    incident: bool
    causes: tuple[TruthCause, ...]
    start_ns: int
    resolution_ns: int
    steps: int

    @property
    def primary(self) -> TruthCause | None:
        return self.causes[0] if self.causes else None

    def step_of(self, ts_ns: int) -> int:
        """The sample index of a timestamp (for detection delays in samples)."""
        return (ts_ns - self.start_ns) // self.resolution_ns

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario_id": self.scenario_id, "incident": self.incident,
            "causes": [c.to_dict() for c in self.causes], "start_ns": self.start_ns,
            "resolution_ns": self.resolution_ns, "steps": self.steps,
        }


@dataclass(frozen=True)
class GeneratedScenario:
    """A generated scenario: its frames (one per step), the answer key, and the raw series."""

    definition: ScenarioDefinition
    profile: HostProfile
    frames: list[BatchFrame]
    truth: GroundTruthResolved
    samples: pa.Table
    """Every sample of every frame, step-major (the frames are slices of it)."""
    series: SeriesBook = field(repr=False)
    """The series as numpy arrays (keys, values, presence), for analysis and tests."""

    @property
    def run_id(self) -> str:
        return f"lab-{self.definition.id}-seed{self.definition.seed}"

    def config(self) -> dict[str, Any]:
        """The evidence package configuration: definition, resolved profile, ground truth."""
        return {
            "lab": {
                "generator": GENERATOR_VERSION,
                "scenario": self.definition.model_dump(mode="json", by_alias=True),
                "profile": self.profile.model_dump(mode="json"),
                "ground_truth": self.truth.to_dict(),
            }
        }


def resolve_profile(definition: ScenarioDefinition) -> HostProfile:
    profile = definition.profile
    return builtin_profile(profile) if isinstance(profile, str) else profile


def generate(definition: ScenarioDefinition) -> GeneratedScenario:
    """Generate a scenario's telemetry. Pure: same definition, same frames, byte for byte."""
    from sreagent.errors import BadInput

    profile = resolve_profile(definition)
    known = profile.entities()
    for i, fault in enumerate(definition.faults):
        if fault.target not in known:
            raise BadInput(f"faults[{i}].target {fault.target!r} is not an entity of profile "
                           f"{profile.name}", field=f"faults[{i}].target")
    for i, restart in enumerate(definition.baseline.restarts):
        if restart.target not in known:
            raise BadInput(f"{restart.target!r} is not an entity of profile {profile.name}",
                           field=f"baseline.restarts[{i}].target")
    world = build_world(definition, profile)
    apply_bursts(world)
    apply_restarts(world)
    windows = [INJECTORS[f.fault_class](world, f, i) for i, f in enumerate(definition.faults)]
    book, columns = derive(world)
    frames, samples = build_frames(world, book, columns, definition.id)
    truth = _resolve_truth(definition, world.events, book, windows)
    return GeneratedScenario(definition=definition, profile=profile, frames=frames, truth=truth,
                             samples=samples, series=book)


def _resolve_truth(definition: ScenarioDefinition, events: list[dict[str, object]],
                   book: SeriesBook, windows: list[tuple[int, int]]) -> GroundTruthResolved:
    res_ns = definition.resolution_s * 10**9
    start_ns = definition.start_ns
    first_onset = min((f.onset_s for f in definition.faults), default=definition.duration_s)
    base_steps = first_onset // definition.resolution_s
    causes = []
    for cause in definition.ground_truth.causes:
        index, fault = next((i, f) for i, f in enumerate(definition.faults)
                            if f.target == cause.entity and f.fault_class == cause.fault_class)
        onset = fault.onset_s // definition.resolution_s
        visible: list[int] = []
        for key, values, present in zip(book.keys, book.values, book.present, strict=True):
            if key[0] not in cause.cited_metrics:
                continue
            mask = present if present is not None else np.ones(len(values), bool)
            if mask[:base_steps].mean() < 0.8:
                continue
            band = baseline_band(key[0], values[:base_steps][mask[:base_steps]])
            hit = first_deviation(key[0], band, values, mask, onset)
            if hit is not None:
                visible.append(hit)
        event_steps = [int(e["step"]) for e in events  # type: ignore[call-overload]
                       if e["entity"] == cause.entity and int(e["step"]) >= onset]  # type: ignore[call-overload]
        visible_step = min(visible + event_steps, default=None)
        end = (None if fault.duration_s is None
               else start_ns + (fault.onset_s + fault.duration_s) * 10**9)
        causes.append(TruthCause(
            entity=cause.entity, fault_class=cause.fault_class, remediation=cause.remediation,
            cited_metrics=tuple(cause.cited_metrics), onset_ns=start_ns + fault.onset_s * 10**9,
            visible_ns=None if visible_step is None else start_ns + visible_step * res_ns,
            end_ns=end, window=windows[index],
        ))
    return GroundTruthResolved(
        scenario_id=definition.id, incident=definition.ground_truth.incident,
        causes=tuple(causes), start_ns=start_ns, resolution_ns=res_ns, steps=definition.steps,
    )
