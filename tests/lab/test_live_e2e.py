"""``sreagent lab live`` end to end: a real fault on this host, the real collector and
controller as separate processes on loopback, the role chain's answer read back through the
API, the evidence package exported and replayed (root; slow; marker ``live``: ``make
test-live``).

Each default-posture run asserts: the host was steady before the fault (otherwise run_live
raises HostNotSteady naming the open incidents, and the test fails with that message), an
incident opened after the fault began, its run completed within 90 s of the fault, the
answer is right (the top hypothesis's class is the scenario's fault class and its entity is
the process or cgroup made faulty), nothing was executed, nothing the fault created is left
(searched independently of the lab's bookkeeping: cgroups, namespaces, links, qdiscs, nftables
tables, processes), the controller and collector are gone, and the exported package is
complete and replays identically.

The approved run (cgroup-throttle --approve) asserts that the planner's
``raise_cgroup_cpu_quota`` on the lab's cgroup was approved through the API and executed
exactly once, that nothing but read-only looks ran outside the lab's cgroup, that the kernel's quota really
rose (and the throttling the kernel counts fell),
that the verifier's verdict is improved or inconclusive with its test stated (improved only
with a p-value and an effect size), and that nothing is left afterwards. Waits inside
run_live poll with generous deadlines; they cost time only on failure.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from sreagent.evidence import verify_package
from sreagent.lab.live import LiveResult, run_live
from tests.conftest import requires_root

from .observe import everything_with_tag

pytestmark = [pytest.mark.slow, pytest.mark.live, requires_root]

BASELINE_S = 30.0
DURATION_S = 60.0
ANSWER_WITHIN_S = 90.0
STEADY_S = 120.0
"""How long a run waits for a busy host to settle (a shared CI machine's load comes in bursts)."""


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry}: {cmdline[:200]}")
    return found


def _live(scenario: str, tmp_path: Path, **kwargs: Any) -> tuple[LiveResult, float]:
    lines: list[str] = []
    start = time.monotonic()
    try:
        result = run_live(scenario, duration_s=kwargs.pop("duration_s", DURATION_S),
                          out=tmp_path, baseline_s=BASELINE_S, steady_timeout_s=STEADY_S,
                          render_postmortem=False,
                          progress=lines.append, **kwargs)
    finally:
        print("\n".join(lines))
    took = time.monotonic() - start
    print(json.dumps({**result.json_object(), "wall_seconds": round(took, 1)}, indent=2))
    return result, took


def _check_common(result: LiveResult) -> None:
    traces = everything_with_tag(result.tag)
    assert not traces, f"the fault left: {traces}"
    assert result.cleanup_ok, result.notes
    assert not _processes_mentioning(result.workdir), "controller or collector still running"
    assert result.package is not None, result.notes
    verify_package(Path(result.package))  # complete: every file, hash and row count
    # The controller's run package records the chain's inputs and activity results
    # (config.json "run"), so the recorded package replays identically (issue #10).
    assert result.replay_identical is True, result.notes


@pytest.mark.parametrize(
    "scenario", ["cpu-hog", "cgroup-throttle", "memory-oom", "net-loss", "io-saturation"]
)
def test_live_fault_is_detected_and_leaves_nothing(scenario: str, tmp_path: Path) -> None:
    result, _ = _live(scenario, tmp_path)
    assert result.incident_opened, result.notes
    assert result.detection_seconds is not None and 0 <= result.detection_seconds <= DURATION_S
    assert result.run_state == "completed", result.notes
    # Within 90 s of the fault the answer is there (issue 10).
    assert result.answer_seconds is not None and result.answer_seconds <= ANSWER_WITHIN_S
    # The answer itself: the fault's class, on the process or cgroup that was made faulty.
    assert result.top_hypothesis == result.expected_hypothesis, result.ranking
    assert result.top_entity == result.injected_entity, result.ranking
    assert result.correct
    # The default posture: the plan records commands, nothing runs.
    assert not result.executed
    assert all(line.endswith((": dry_run", ": blocked")) for line in result.execution), \
        result.execution
    assert result.verification == "nothing_executed"
    _check_common(result)


def test_approved_quota_raise_is_executed_once_and_verified(tmp_path: Path) -> None:
    # 120 s: room for 25 s before the approval and the controller's 30 s after the action.
    result, _ = _live("cgroup-throttle", tmp_path, approve=True, duration_s=120.0)
    assert result.incident_opened and result.run_state == "completed", result.notes
    assert result.correct, result.ranking
    cgroup = result.injected_entity
    assert cgroup.endswith(".scope")  # named like a unit, so the planner can name it
    raised = [line for line in result.execution
              if line.startswith(f"raise_cgroup_cpu_quota {cgroup}:")]
    assert raised == [f"raise_cgroup_cpu_quota {cgroup}: executed"], result.execution
    assert result.executed
    # Nothing outside the lab was changed: every executed action that changes state is on the
    # lab's cgroup (read-only looks, e.g. vmstat on the host, may run anywhere).
    safety = {line.split(" (", 1)[0]: line.split(" (", 1)[1].split(")", 1)[0]
              for line in result.proposal}
    for line in result.execution:
        if line.endswith(": executed"):
            action_target = line.rsplit(":", 1)[0]
            assert safety[action_target] == "read_only" or \
                action_target.split(" ", 1)[1] == cgroup, (line, result.proposal)
    # The kernel's witness: the quota doubled (0.2 -> 0.4 CPU) and throttling fell.
    effect = result.remediation_effect
    assert effect is not None and effect.after is not None, result.notes
    assert effect.before.quota_cores == pytest.approx(0.2)
    assert effect.after.quota_cores == pytest.approx(0.4)
    assert effect.before.share is not None and effect.before.share > 0.5
    assert effect.after.share is not None and effect.after.share < effect.before.share
    # The verifier: improved only with evidence, or honestly inconclusive, with its test.
    assert result.verification in ("improved", "inconclusive"), result.verdicts
    quota = [v for v in result.verdicts if v["metric"] == "cgroup_cpu_throttled_ratio"]
    assert len(quota) == 1, result.verdicts
    verdict = quota[0]
    assert verdict["verdict"] in ("improved", "inconclusive") and verdict["test"], verdict
    if verdict["verdict"] == "improved":
        assert verdict["p_value"] is not None and verdict["effect_size"] is not None
        assert verdict["after_n"] > 0 and verdict["before_n"] > 0
    else:
        assert verdict["reason"], verdict
    _check_common(result)  # the cgroup (and with it the raised quota) is gone
