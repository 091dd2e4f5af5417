"""The scenario definition schema: what ``fixtures/scenarios/<NN_slug>/scenario.yaml`` holds.

Every model forbids unknown keys, so a typo in a definition is an error that names the key,
never a silently ignored setting.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sreagent.scenarios._classes import CATALOGUE, FaultClass, RemediationFamily
from sreagent.scenarios._profiles import HostProfile
from sreagent.telemetry.names import METRICS_BY_NAME, entity_kind

SCENARIO_FORMAT = "sreagent.scenario/v1"
ID_PATTERN = r"^[0-9]{2}_[a-z0-9]+(?:_[a-z0-9]+)*$"
MIN_BASELINE_S = 120
"""Every fault starts at least this long after the start, so there is a baseline to compare."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


BurstKind = Literal["cron", "backup", "checkpoint", "logrotate"]


class Burst(_Model):
    """A recurring, benign burst of work (never an incident)."""

    kind: BurstKind
    """``cron`` (CPU on the cron process), ``backup`` (reads + writes on the backup process's
    disk), ``checkpoint`` (training ranks write a checkpoint; GPUs dip), ``logrotate``
    (compression: CPU and writes)."""
    every_s: Annotated[int, Field(gt=0)]
    offset_s: Annotated[int, Field(ge=0)] = 0
    duration_s: Annotated[int, Field(gt=0)]
    intensity: Annotated[float, Field(gt=0, le=10)] = 1.0


class Restart(_Model):
    """A planned restart: the process gets a new pid and its counters start again at zero."""

    at_s: Annotated[int, Field(ge=0)]
    target: str
    """``process/<pid>`` of the profile."""


class Baseline(_Model):
    load: Annotated[float, Field(gt=0, le=4)] = 1.0
    """Scale of service demand relative to the profile's nominal figures."""
    diurnal_amplitude: Annotated[float, Field(ge=0, lt=1)] = 0.25
    """Relative day/night swing of service load (peak 15:00 UTC, trough 03:00 UTC)."""
    noise: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    """Relative standard deviation of sample noise."""
    bursts: list[Burst] = []
    restarts: list[Restart] = []


class Fault(_Model):
    """One injected fault: what, where, when, how hard."""

    fault_class: FaultClass = Field(alias="class")
    target: str
    """Entity the fault starts at (its root cause), e.g. ``process/4242``, ``gpu/3``."""
    onset_s: Annotated[int, Field(ge=MIN_BASELINE_S)]
    ramp_s: Annotated[int, Field(ge=0)] = 0
    """Seconds from onset until full intensity (a leak's ramp is the leak itself)."""
    duration_s: Annotated[int, Field(gt=0)] | None = None
    """Seconds from onset until the fault clears; absent: until the end."""
    intensity: Annotated[float, Field(gt=0, le=10)] = 1.0
    params: dict[str, Any] = {}
    """Class-specific settings (``xid``, ``neighbour_resource``, ``victim``...; docs/scenarios.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Cause(_Model):
    """One true root cause."""

    entity: str
    fault_class: FaultClass
    remediation: RemediationFamily
    cited_metrics: Annotated[list[str], Field(min_length=1)]
    """Metrics the analysis must cite for this cause (names from sreagent.telemetry.names)."""

    @field_validator("cited_metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in METRICS_BY_NAME:
                raise ValueError(f"{name!r} is not a metric in sreagent.telemetry.names")
        return value


class GroundTruth(_Model):
    incident: bool
    """Whether a correct analysis opens an incident at all (false for controls)."""
    causes: list[Cause] = []
    """Root causes, the primary first (empty for controls)."""
    notes: str = ""


class ScenarioDefinition(_Model):
    """A whole scenario: host, baseline, faults and the answer."""

    format: Literal["sreagent.scenario/v1"] = "sreagent.scenario/v1"
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    """Equal to the folder name ``NN_slug``."""
    title: str
    description: str = ""
    tags: list[Literal["host", "cgroup", "network", "disk", "memory", "gpu", "multi-fault",
                       "look-alike", "control", "fleet"]] = []
    profile: str | HostProfile
    """A built-in profile name or an inline profile."""
    seed: Annotated[int, Field(ge=0, lt=2**63)]
    start: datetime
    """Time of the first sample (UTC, with an explicit offset)."""
    duration_s: Annotated[int, Field(ge=2 * MIN_BASELINE_S, le=7 * 86_400)]
    resolution_s: Annotated[int, Field(ge=1, le=300)] = 1
    baseline: Baseline = Baseline()
    faults: list[Fault] = []
    ground_truth: GroundTruth

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("start needs an explicit UTC offset (e.g. 2026-03-02T14:00:00Z)")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioDefinition:
        if self.duration_s % self.resolution_s:
            raise ValueError("duration_s must be a multiple of resolution_s")
        truth = self.ground_truth
        if truth.incident != bool(self.faults):
            raise ValueError("ground_truth.incident must be true exactly when there are faults")
        if bool(truth.causes) != bool(self.faults):
            raise ValueError("ground_truth.causes must list the root causes of the faults")
        for i, fault in enumerate(self.faults):
            if fault.onset_s >= self.duration_s:
                raise ValueError(f"faults[{i}] starts after the scenario ends")
            wanted = CATALOGUE[fault.fault_class].entity_kind
            if entity_kind(fault.target) != wanted:
                raise ValueError(
                    f"faults[{i}]: a {fault.fault_class} fault targets a {wanted} entity, "
                    f"not {fault.target!r}"
                )
        injected = {(f.target, f.fault_class) for f in self.faults}
        for i, cause in enumerate(truth.causes):
            if (cause.entity, cause.fault_class) not in injected:
                raise ValueError(
                    f"ground_truth.causes[{i}] ({cause.fault_class} at {cause.entity}) is not "
                    "one of the injected faults"
                )
            allowed = CATALOGUE[cause.fault_class].moves
            for name in cause.cited_metrics:
                if name not in allowed:
                    raise ValueError(
                        f"ground_truth.causes[{i}] cites {name!r}, which a "
                        f"{cause.fault_class} fault does not move"
                    )
        return self

    @property
    def start_ns(self) -> int:
        return int(self.start.timestamp()) * 10**9

    @property
    def steps(self) -> int:
        return self.duration_s // self.resolution_s


def slug_ok(name: str) -> bool:
    """Whether a folder name is a valid scenario id."""
    return re.match(ID_PATTERN, name) is not None
