"""Figures of the regression report and their comparison with a committed baseline.

The figures come from the same code the product runs: every package in ``replays/`` is
replayed (determinism), and every scenario of the library is generated and run through the
role chain (``sreagent.chain.lab``), scored against its ground truth. Nothing is re-scored by
hand here beyond counting the chain's verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sreagent.errors import BadInput, SreagentError

BASELINE_FORMAT = "sreagent.regression-baseline/v1"
DEFAULT_RESOLUTION_S = 5
"""Scenarios run at the golden replays' resolution: the whole library fits in CI's budget."""

LOWER_IS_BETTER = (
    "detection.false_positives",
    "detection.delay_median_samples",
    "detection.delay_p90_samples",
)
"""Figures where a rise, not a fall, is the regression."""

TOLERANCE = 1e-9
DATASET_PREFIX = "dataset."
"""Figures of the public datasets (sreagent.reports._datasets); every one is higher-is-better."""


def scenario_runs(
    *,
    scenarios: Sequence[str] | None = None,
    resolution_s: int = DEFAULT_RESOLUTION_S,
    overrides: Mapping[str, Any] | None = None,
    scenarios_root: Path | None = None,
) -> list[dict[str, Any]]:
    """Generate each scenario (all when ``scenarios`` is empty), run the chain, score it.

    Each row is ``sreagent.chain.lab``'s verdict plus ``ranked`` (the hypotheses' fault
    classes, best first) and ``fault_classes`` (every true class)."""
    from sreagent.chain import ChainConfig
    from sreagent.chain.lab import default_chain, run_on_frames, verdict_of
    from sreagent.replay import apply_overrides
    from sreagent.scenarios import generate, load_all, load_scenario

    config = apply_overrides(ChainConfig(), overrides) if overrides else ChainConfig()
    chain = default_chain(config)
    definitions = (
        [load_scenario(s, scenarios_root) for s in scenarios]
        if scenarios
        else load_all(scenarios_root)
    )
    rows = []
    for definition in definitions:
        definition = definition.model_validate(
            {**definition.model_dump(by_alias=True), "resolution_s": resolution_s}
        )
        scenario = generate(definition)
        result = run_on_frames(scenario.frames, chain)
        verdict = verdict_of(definition.id, scenario.truth, result, resolution_s * 10**9)
        hypothesis = result.of_kind("root_cause_hypothesis")
        ranked = (
            [h.fault_class for h in hypothesis.payload.hypotheses]  # type: ignore[union-attr]
            if hypothesis is not None and result.incident_open
            else []
        )
        rows.append(
            {**verdict, "ranked": ranked, "fault_classes": [c for c, _ in verdict["expected_all"]]}
        )
    return rows


def replay_runs(replays_dir: Path | str) -> list[dict[str, Any]]:
    """Replay every package under ``replays_dir``: identical or the first divergence."""
    from sreagent.replay import Replayer
    from sreagent.reports._package import list_packages

    rows = []
    for package in list_packages(replays_dir):
        try:
            result = Replayer().replay(package)
            first = result.first_divergence
            rows.append(
                {
                    "package": package.name,
                    "identical": result.identical,
                    "artifacts": len(result.recorded),
                    "divergence": first.describe().splitlines()[0] if first else "",
                }
            )
        except SreagentError as err:  # a corrupt or stale package is a failed check, not a crash
            rows.append(
                {
                    "package": package.name,
                    "identical": False,
                    "artifacts": 0,
                    "divergence": str(err),
                }
            )
    return rows


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def figures(
    scenario_rows: Sequence[Mapping[str, Any]], replay_rows: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """The report's figures, flat ``name -> value`` (None-valued figures are left out).

    Detection counts a scenario as positive when its ground truth holds a fault and as
    detected when the chain opened an incident; AC@k is whether a true fault class is among
    the chain's top k hypotheses (0 when no incident opened)."""
    faults = [r for r in scenario_rows if r["expected"] is not None]
    controls = [r for r in scenario_rows if r["expected"] is None]
    tp = sum(1 for r in faults if r["incident"])
    fp = sum(1 for r in controls if r["incident"])
    fn = len(faults) - tp
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = (
        round(2 * precision * recall / (precision + recall), 4)
        if precision is not None and recall is not None and precision + recall > 0
        else None
    )
    delays = np.asarray(
        [r["detection_delay_samples"] for r in faults if r["detection_delay_samples"] is not None],
        dtype=float,
    )
    out: dict[str, float | None] = {
        "determinism.identical_ratio": _ratio(
            sum(1 for r in replay_rows if r["identical"]), len(replay_rows)
        ),
        "detection.precision": precision,
        "detection.recall": recall,
        "detection.f1": f1,
        "detection.false_positives": float(fp),
        "detection.delay_median_samples": float(np.median(delays)) if delays.size else None,
        "detection.delay_p90_samples": float(np.percentile(delays, 90)) if delays.size else None,
        "rca.localisation": _ratio(sum(1 for r in faults if r["localised"]), len(faults)),
    }
    for k in (1, 3):
        out[f"rca.ac{k}"] = _ratio(sum(1 for r in faults if _hit(r, k)), len(faults))
        for fault_class in sorted({r["expected"] for r in faults}):
            of_class = [r for r in faults if r["expected"] == fault_class]
            out[f"rca.ac{k}.{fault_class}"] = _ratio(
                sum(1 for r in of_class if _hit(r, k)), len(of_class)
            )
    return {k: float(v) for k, v in out.items() if v is not None}


def _hit(row: Mapping[str, Any], k: int) -> bool:
    return any(c in row["fault_classes"] for c in row["ranked"][:k])


@dataclass(frozen=True)
class Regression:
    figure: str
    baseline: float
    now: float | None
    """None: the figure could not be computed this time (that is a regression too)."""

    def describe(self) -> str:
        now = "missing" if self.now is None else f"{self.now:g}"
        return f"{self.figure}: {now} (baseline {self.baseline:g})"


def load_baseline(path: Path | str) -> dict[str, Any]:
    """A committed baseline file (format ``sreagent.regression-baseline/v1``)."""
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise BadInput("no such baseline file", path=str(path)) from None
    except json.JSONDecodeError as err:
        raise BadInput(f"the baseline is not JSON: {err}", path=str(path)) from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise BadInput(f"not a baseline file (format must be {BASELINE_FORMAT})", path=str(path))
    if not isinstance(data.get("figures"), dict) or not all(
        isinstance(v, int | float) for v in data["figures"].values()
    ):
        raise BadInput(
            "baseline figures must be an object of numbers", path=str(path), field="figures"
        )
    return data


def baseline_document(
    figs: Mapping[str, float], *, scenarios: Sequence[str] | None, resolution_s: int
) -> dict[str, Any]:
    """What ``--write-baseline`` stores: the figures and the run they came from."""
    return {
        "format": BASELINE_FORMAT,
        "scenarios": sorted(scenarios) if scenarios else "all",
        "resolution_s": resolution_s,
        "figures": dict(sorted(figs.items())),
    }


def check_comparable(
    baseline: Mapping[str, Any], *, scenarios: Sequence[str] | None, resolution_s: int
) -> None:
    """Raise BadInput unless ``baseline`` was made on this scenario set and resolution."""
    made_on = baseline.get("scenarios", "all")
    running = sorted(scenarios) if scenarios else "all"
    if made_on != running or baseline.get("resolution_s") != resolution_s:
        raise BadInput(
            f"the baseline was made on scenarios {made_on} at {baseline.get('resolution_s')} s; "
            f"this run is {running} at {resolution_s} s, so its figures do not compare",
            field="baseline",
        )


def compare_with_baseline(
    figs: Mapping[str, float],
    baseline: Mapping[str, Any],
    *,
    scenarios: Sequence[str] | None,
    resolution_s: int,
    compare_datasets: bool = True,
) -> list[Regression]:
    """Every baseline figure that got worse (or went missing). Raises BadInput when the
    baseline was made on another scenario set or resolution: such figures do not compare.

    ``compare_datasets=False`` (the datasets were deliberately skipped) leaves the baseline's
    ``dataset.*`` figures out; otherwise a dataset figure that could not be computed (its
    folder is missing) is missing, hence worse, like any other."""
    check_comparable(baseline, scenarios=scenarios, resolution_s=resolution_s)
    out = []
    for name, base in sorted(baseline["figures"].items()):
        if not compare_datasets and name.startswith(DATASET_PREFIX):
            continue
        now = figs.get(name)
        if now is None:
            out.append(Regression(name, float(base), None))
        elif name in LOWER_IS_BETTER:
            if now > base + TOLERANCE:
                out.append(Regression(name, float(base), now))
        elif now < base - TOLERANCE:
            out.append(Regression(name, float(base), now))
    return out
