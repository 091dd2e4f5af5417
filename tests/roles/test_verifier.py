"""Verifier: improved, not improved, inconclusive; the statistics behind it."""

from __future__ import annotations

import numpy as np
import pytest

from sreagent.artifacts import (
    ActionResult,
    ExecutionResult,
    ProposedAction,
    RemediationProposal,
    VerificationResult,
    make_artifact,
)
from sreagent.roles import verify
from sreagent.roles._stats import counter_increments, hysteresis, mann_whitney
from sreagent.testing import START_NS, RoleEnvironment, WindowBuilder

ACTION_AT = 600


def _artifacts(executed: bool = True) -> tuple[object, object]:
    proposal = make_artifact(
        kind="remediation_proposal", run_id="r", incident_id="inc", logical_time=START_NS,
        payload=RemediationProposal(actions=[ProposedAction(
            action_id="act-1", action="renice_process", target="process/1",
            safety_class="safe_reversible", rollback="renice -n 0 -p 1",
            expected_metric="pressure_some_ratio{resource=cpu}", expected_entity="host",
            expected_direction="down", hypothesis_rank=1)]))
    execution = make_artifact(
        kind="execution_result", run_id="r", incident_id="inc",
        logical_time=START_NS + ACTION_AT * 10**9,
        payload=ExecutionResult(results=[ActionResult(
            action_id="act-1", idempotency_key="k",
            outcome="executed" if executed else "dry_run", exit_code=0)]))
    return execution, proposal


def _window(after_value: float, seconds: int = 900) -> WindowBuilder:
    w = WindowBuilder(seconds=seconds, seed=3)
    w.gauge("pressure_some_ratio", base=0.5, noise=0.05, labels={"resource": "cpu"})
    w.ramp("pressure_some_ratio", labels={"resource": "cpu"}, start_s=ACTION_AT + 1,
           to=after_value, noise=0.05)
    return w


def _verdict(w: WindowBuilder, executed: bool = True) -> VerificationResult:
    execution, proposal = _artifacts(executed)
    art = RoleEnvironment().run(verify, execution, proposal, w.view())
    assert isinstance(art.payload, VerificationResult)
    return art.payload


def test_improved_when_the_metric_drops() -> None:
    v = _verdict(_window(0.1))
    assert v.overall == "improved"
    d = v.verdicts[0]
    assert d.test == "mann_whitney_u_normal" and d.p_value is not None and d.p_value < 0.01
    assert d.effect_size is not None and d.effect_size > 0.9
    assert d.before_n == 300 and d.after_n == 299


def test_not_improved_when_it_stays() -> None:
    v = _verdict(_window(0.5))
    assert v.overall == "not_improved"
    assert v.verdicts[0].p_value is not None and v.verdicts[0].p_value > 0.01


def test_not_improved_when_it_gets_worse() -> None:
    v = _verdict(_window(0.9))
    assert v.overall == "not_improved" and v.verdicts[0].effect_size is not None
    assert v.verdicts[0].effect_size < 0


def test_inconclusive_when_the_after_window_is_too_short() -> None:
    v = _verdict(_window(0.1, seconds=ACTION_AT + 10))
    assert v.overall == "inconclusive"
    assert "after" in v.verdicts[0].reason


def test_nothing_executed() -> None:
    assert _verdict(_window(0.1), executed=False).overall == "nothing_executed"


def test_mann_whitney_matches_known_values() -> None:
    # Hand-checked: before = 1..5, after = 6..10 -> U(after > before) = 25, r = 1.
    rng = np.random.default_rng(0)
    t = mann_whitney(np.arange(1.0, 6.0), np.arange(6.0, 11.0), want_down=False, rng=rng,
                     permutations=999, exact_below=30)
    assert t.statistic == 25 and t.effect == 1.0
    # Exact one-sided p of the most extreme of C(10,5)=252 arrangements is 1/252; the
    # permutation estimate (with +1 smoothing over 999 draws) is close to it.
    assert t.p_value == pytest.approx(1 / 252, abs=0.008)
    same = mann_whitney(np.ones(40), np.ones(40), want_down=True, rng=rng, permutations=100,
                        exact_below=30)
    assert same.effect == 0.0 and same.p_value == 1.0


def test_counter_resets_are_not_negative() -> None:
    inc = counter_increments(np.array([10.0, 12.0, 15.0, 2.0, 4.0]))
    assert inc.tolist() == [0.0, 2.0, 3.0, 2.0, 2.0]


def test_hysteresis_opens_and_closes() -> None:
    hot = np.array([0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0], bool)
    active = hysteresis(hot, ~hot, 2, 3)
    assert active.astype(int).tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
