"""Deterministic replay: re-run recorded chain runs from evidence packages and compare.

from sreagent.replay import Replayer
result = Replayer().replay("replays/01_cpu_saturation_runaway")
assert result.identical, result.first_divergence.describe()
what_if = Replayer(overrides={"posture.dry_run": False}).replay(path)
print(what_if.decisions.summary())
"""

from sreagent.replay._decisions import ActionChange, DecisionDiff, WhatIfActivities, decision_diff
from sreagent.replay._record import (
    RUN_FORMAT,
    RunInputs,
    package_views,
    record_run,
    run_chain,
    runbook_texts,
)
from sreagent.replay._replayer import (
    Divergence,
    FieldDiff,
    Replayer,
    ReplayResult,
    apply_overrides,
    compare,
    parse_override,
)

__all__ = [
    "RUN_FORMAT",
    "ActionChange",
    "DecisionDiff",
    "Divergence",
    "FieldDiff",
    "ReplayResult",
    "Replayer",
    "RunInputs",
    "WhatIfActivities",
    "apply_overrides",
    "compare",
    "decision_diff",
    "package_views",
    "parse_override",
    "record_run",
    "run_chain",
    "runbook_texts",
]
