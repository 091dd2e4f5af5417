"""Scoring the role chain on the scenario library (``sreagent lab run``).

:func:`lab_verdict` is the hook ``sreagent lab run`` calls for each generated scenario; it runs
the whole chain on the scenario's batches and compares the verdict with the ground truth:

* ``expected``: the true fault class (the first cause for multi-fault scenarios; ``null`` for
  a no-fault control), ``expected_entity`` its entity, ``expected_all`` every cause;
* ``top`` / ``top_entity``: the chain's top hypothesis (``null`` when no incident opened);
* ``correct``: for a fault scenario, the top class is one of the true classes; for a control,
  no incident opened. ``localised``: also the top entity is that cause's entity;
* ``detection_delay_samples``: samples from the first sample the fault is visible in the data
  (ground truth ``visible_ns``) to the sample at which the incident opened; negative when it
  opened before (on an earlier, unrelated signal); ``null`` when nothing opened.

:func:`lab_summary` turns the list into the summary object (accuracy, localisation, false
positives on controls, and the detection-delay distribution).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sreagent.artifacts import AnomalyFinding, ArtifactKind
from sreagent.chain._runner import DEFAULT_RUNBOOKS, Chain, ChainResult, load_runbooks
from sreagent.runtime import ChainConfig, EvidenceView


def _opened_ns(result: ChainResult) -> int | None:
    finding = result.of_kind(ArtifactKind.ANOMALY_FINDING)
    if finding is None or not isinstance(finding.payload, AnomalyFinding):
        return None
    joint = [f for f in finding.payload.findings if f.detector == "joint_risk"]
    return joint[0].onset_ns if joint else None


def verdict_of(scenario_id: str, truth: Any, result: ChainResult,
               resolution_ns: int) -> dict[str, Any]:
    """The per-scenario verdict from a chain result and the scenario's resolved truth."""
    causes = list(getattr(truth, "causes", ()) or ())
    top = result.top if result.incident_open else None
    opened = _opened_ns(result) if result.incident_open else None
    out: dict[str, Any] = {
        "id": scenario_id,
        "expected": str(causes[0].fault_class) if causes else None,
        "expected_entity": causes[0].entity if causes else None,
        "expected_all": [[str(c.fault_class), c.entity] for c in causes],
        "top": top[0] if top else None,
        "top_entity": top[1] if top else None,
        "incident": result.incident_open,
    }
    if causes:
        match = [c for c in causes if top and str(c.fault_class) == top[0]]
        out["correct"] = bool(match)
        out["localised"] = bool(match) and any(c.entity == top[1] for c in match)  # type: ignore[index]
        visible = [c.visible_ns for c in causes if c.visible_ns is not None]
        out["detection_delay_samples"] = (
            None if opened is None or not visible
            else round((opened - min(visible)) / resolution_ns))
    else:
        out["correct"] = not result.incident_open
        out["localised"] = not result.incident_open
        out["detection_delay_samples"] = None
    return out


def run_on_frames(frames: Sequence[Any], chain: Chain | None = None) -> ChainResult:
    chain = chain or default_chain()
    return chain.run(EvidenceView.from_frames(list(frames)))


def default_chain(config: ChainConfig | None = None) -> Chain:
    return Chain(config=config or ChainConfig(), runbooks=load_runbooks(DEFAULT_RUNBOOKS))


def lab_verdict(scenario: Any, output: Any = None, *, chain: Chain | None = None
                ) -> dict[str, Any]:
    """Hook for ``sreagent lab run``: run the chain on a GeneratedScenario and score it."""
    result = run_on_frames(scenario.frames, chain)
    truth = scenario.truth
    res_ns = int(getattr(truth, "resolution_ns", 0) or scenario.definition.resolution_s * 10**9)
    return verdict_of(scenario.definition.id, truth, result, res_ns)


def lab_summary(verdicts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary object of ``sreagent lab run --all --json``."""
    faults = [v for v in verdicts if v["expected"] is not None]
    controls = [v for v in verdicts if v["expected"] is None]
    delays = [v["detection_delay_samples"] for v in faults
              if v["detection_delay_samples"] is not None]
    arr = np.asarray(delays, dtype=float)
    return {
        "scenarios": len(verdicts),
        "fault_scenarios": len(faults),
        "controls": len(controls),
        "top1_accuracy": round(sum(v["correct"] for v in faults) / len(faults), 4)
        if faults else None,
        "localisation_accuracy": round(sum(v["localised"] for v in faults) / len(faults), 4)
        if faults else None,
        "false_positive_incidents": sum(1 for v in controls if v["incident"]),
        "missed_incidents": sum(1 for v in faults if not v["incident"]),
        "detection_delay_samples": {
            "median": float(np.median(arr)) if arr.size else None,
            "p90": float(np.percentile(arr, 90)) if arr.size else None,
            "max": float(arr.max()) if arr.size else None,
            "within_3": int(np.sum((arr >= 0) & (arr <= 3))),
            "measured": int(arr.size),
        },
    }
