"""``sreagent lab live`` end to end: a real fault on this host, the real collector and
controller as separate processes on loopback, the role chain's answer read back through the
API, the evidence package exported and replayed (root; slow).

Each run asserts: an incident opened after the fault began, its run completed, nothing was
executed under the default posture, nothing the fault created is left (searched independently
of the lab's bookkeeping), the controller and collector are gone, and the exported package is
complete and replays identically. The role chain's answer is asserted for
cgroup-throttle, the one verified on the loaded shared machine these were written on (the
others are reported per run in docs/evaluation.md). Waits inside run_live poll with generous
deadlines; they cost time only on failure.
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
        result = run_live(scenario, duration_s=DURATION_S, out=tmp_path, baseline_s=BASELINE_S,
                          render_postmortem=False, progress=lines.append, **kwargs)
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
    if scenario == "cgroup-throttle":
        # The answer itself: verified on a saturated shared machine too (the other scenarios'
        # answers lose to the busiest process there; docs/evaluation.md, live lab).
        assert result.top_hypothesis == result.expected_hypothesis, result.proposal
        assert result.top_entity == result.injected_entity and result.correct
    # The default posture: the plan records commands, nothing runs.
    assert not result.executed
    assert result.verification == "nothing_executed"
    _check_common(result)
