"""The chain's configuration: every threshold, posture switch and model setting, as data.

One frozen model, hashed into the evidence package, so a what-if replay can change one key
and diff the decisions. docs/roles.md documents every key and why it has its default.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from sreagent.artifacts import Posture
from sreagent.canonical import canonical_digest


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DetectionConfig(_Frozen):
    baseline_seconds: Annotated[float, Field(gt=0)] = 300.0
    """Length of the leading part of the window the robust baselines come from."""
    baseline_fraction: Annotated[float, Field(gt=0, le=0.9)] = 0.3
    """...at most this share of the window, so a short window keeps an analysis part."""
    z_open: Annotated[float, Field(gt=0)] = 6.0
    """Robust z-score (median/MAD) a sample needs to count as hot."""
    z_close: Annotated[float, Field(gt=0)] = 3.0
    """Below this a hot series is cool again (hysteresis)."""
    min_relative_change: Annotated[float, Field(ge=0)] = 0.25
    """A z-score alone is not enough: the value must also move this share off its baseline."""
    open_samples: Annotated[int, Field(ge=1)] = 2
    """Consecutive hot samples that open an incident."""
    close_samples: Annotated[int, Field(ge=1)] = 60
    """Consecutive cool samples that close one."""
    min_risk_to_open: Annotated[float, Field(ge=0, le=1)] = 0.55
    """Joint risk (medium) an incident needs; a lone weak deviation stays a finding."""
    max_risk_to_close: Annotated[float, Field(ge=0, le=1)] = 0.2
    """Joint risk below which a sample counts as cool (hysteresis with min_risk_to_open)."""
    recurring_min_bursts: Annotated[int, Field(ge=1)] = 2
    """Earlier bursts of the same shape in the window that mark a burst as routine."""


class DiskAwaitThresholds(_Frozen):
    """Average IO latency (seconds) that counts as saturated, per device kind."""

    nvme: float = 0.010
    ssd: float = 0.030
    hdd: float = 0.150
    virtual: float = 0.050
    unknown: float = 0.050


class VerificationConfig(_Frozen):
    before_seconds: Annotated[float, Field(gt=0)] = 300.0
    min_samples: Annotated[int, Field(ge=3)] = 20
    """Fewer samples on either side of an action and the verdict is inconclusive."""
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.01
    min_effect: Annotated[float, Field(ge=0, le=1)] = 0.3
    """Smallest rank-biserial effect size that counts as an improvement."""
    permutations: Annotated[int, Field(ge=100)] = 2000
    """Permutation draws when either side has fewer than ``exact_below`` samples."""
    exact_below: Annotated[int, Field(ge=3)] = 30


class LlmConfig(_Frozen):
    enabled: bool = False
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "local"
    api_key: str = ""
    """Sent as a bearer token when set. Never written into evidence (see redacted())."""
    timeout_s: Annotated[float, Field(gt=0)] = 20.0
    max_tokens: Annotated[int, Field(ge=64)] = 800
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0


class ChainConfig(_Frozen):
    """Everything the role chain reads from configuration."""

    detection: DetectionConfig = DetectionConfig()
    disk_await_s: DiskAwaitThresholds = DiskAwaitThresholds()
    posture: Posture = Posture()
    verification: VerificationConfig = VerificationConfig()
    llm: LlmConfig = LlmConfig()
    max_hypotheses: Annotated[int, Field(ge=1, le=20)] = 8
    runbooks_per_hypothesis: Annotated[int, Field(ge=0, le=10)] = 2
    similar_incidents: Annotated[int, Field(ge=0, le=20)] = 3
    action_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0

    def redacted(self) -> dict[str, object]:
        """The configuration as JSON data with secrets blanked (what evidence keeps)."""
        data = self.model_dump(mode="json")
        if data["llm"]["api_key"]:
            data["llm"]["api_key"] = "<redacted>"
        return data

    def digest(self) -> str:
        return canonical_digest(self.redacted())
