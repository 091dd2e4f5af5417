"""What-if knobs of the postmortem app, mapped onto sreagent.replay's overrides.

The app's sliders and toggles are a :class:`WhatIfKnobs`; :func:`knob_overrides` turns the
ones that differ from the recorded configuration into ``--set``-style overrides, and
:func:`run_what_if` replays the package with them through :class:`sreagent.replay.Replayer`.
Nothing here analyses: the replay engine re-runs the recorded chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sreagent.errors import BadInput
from sreagent.replay import Replayer, ReplayResult


@dataclass(frozen=True)
class WhatIfKnobs:
    """The configuration an operator can change in the app (docs/roles.md names them)."""

    min_risk_to_open: float
    z_open: float
    max_hypotheses: int
    dry_run: bool
    require_approval: bool


def recorded_knobs(chain_config: dict[str, Any]) -> WhatIfKnobs:
    """The knobs as the recorded run had them (``config.json["run"]["chain"]``)."""
    try:
        detection = chain_config.get("detection", {})
        posture = chain_config.get("posture", {})
        return WhatIfKnobs(
            min_risk_to_open=float(detection.get("min_risk_to_open", 0.55)),
            z_open=float(detection.get("z_open", 6.0)),
            max_hypotheses=int(chain_config.get("max_hypotheses", 8)),
            dry_run=bool(posture.get("dry_run", True)),
            require_approval=bool(posture.get("require_approval", True)),
        )
    except (TypeError, ValueError, AttributeError) as err:
        raise BadInput(
            f"the recorded chain configuration is malformed: {err}", field="run.chain"
        ) from None


_KEYS = {
    "min_risk_to_open": "detection.min_risk_to_open",
    "z_open": "detection.z_open",
    "max_hypotheses": "max_hypotheses",
    "dry_run": "posture.dry_run",
    "require_approval": "posture.require_approval",
}


def knob_overrides(recorded: WhatIfKnobs, chosen: WhatIfKnobs) -> dict[str, Any]:
    """Dotted overrides for every knob whose value differs from the recording."""
    out: dict[str, Any] = {}
    for name, key in _KEYS.items():
        before, after = getattr(recorded, name), getattr(chosen, name)
        if before != after:
            out[key] = after
    return out


def run_what_if(package: Path | str, overrides: dict[str, Any]) -> ReplayResult:
    """Replay ``package`` with ``overrides`` (a plain replay when there are none).

    The package is not re-verified: the app verified it when it opened it."""
    return Replayer(overrides=overrides, verify=False).replay(package)


def diff_lines(result: ReplayResult) -> list[str]:
    """What an operator reads: the decision diff of a what-if, or the identity verdict."""
    if result.decisions is not None:
        return result.decisions.summary()
    if result.identical:
        return ["no override: the replay is identical to the recording"]
    first = result.first_divergence
    return [first.describe()] if first else ["the replay differs from the recording"]
