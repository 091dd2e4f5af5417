"""Recording scenario-library runs as replayable packages (what ``replays/`` holds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sreagent.chain import ChainConfig, live_activities
from sreagent.chain._runner import DEFAULT_RUNBOOKS
from sreagent.evidence import Manifest
from sreagent.replay._record import RunInputs, record_run, run_chain, runbook_texts
from sreagent.runtime import EvidenceView


def record_scenario(
    scenario: Any,
    out: Path | str,
    *,
    seed: int | None = None,
    resolution_s: int | None = None,
    config: ChainConfig | None = None,
) -> Manifest:
    """Generate a scenario (an id or a ScenarioDefinition), run the whole chain on it and write the run as a package.

    ``seed`` and ``resolution_s`` replace the definition's (a coarser resolution makes small
    golden packages).
    """
    from sreagent.scenarios import generate, load_scenario

    definition = load_scenario(scenario) if isinstance(scenario, str) else scenario
    update = {k: v for k, v in (("seed", seed), ("resolution_s", resolution_s)) if v is not None}
    if update:
        definition = definition.model_validate({**definition.model_dump(), **update})
    scenario = generate(definition)
    view = EvidenceView.from_frames(scenario.frames)
    inputs = RunInputs(
        run_id=scenario.run_id,
        host=view.host,
        window=(view.start_ns, view.end_ns),
        chain=config or ChainConfig(),
        runbooks=runbook_texts(DEFAULT_RUNBOOKS),
    )
    # Default posture: nothing executes; approvals asked for are recorded as pending.
    result = run_chain(inputs, view, activities=live_activities())
    return record_run(
        out,
        inputs=inputs,
        result=result,
        source="lab",
        frames=scenario.frames,
        extra_config={"lab": scenario.config().get("lab", {})},
    )
