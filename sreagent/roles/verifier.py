"""Verifier: did an executed action move its expected metric? Before/after, with a test.

For each executed, state-changing action it compares the expected metric of the expected
entity in the ``before_seconds`` before the action with everything after it, using a one-sided
Mann-Whitney U test in the expected direction (normal approximation with tie correction;
a seeded permutation test for small samples) and the rank-biserial effect size.

* improved: p < ``alpha`` and effect >= ``min_effect``;
* not_improved: enough data, and the test or the effect falls short;
* inconclusive: fewer than ``min_samples`` on either side (a too-short after-window), or the
  metric is missing. Never "improved" without evidence.
"""

from __future__ import annotations

import re

from sreagent.artifacts import (
    Artifact,
    ArtifactKind,
    ArtifactStatus,
    EvidenceRef,
    ExecutionResult,
    RemediationProposal,
    Verdict,
    VerificationResult,
    make_artifact,
)
from sreagent.roles._stats import mann_whitney
from sreagent.runtime._context import RoleContext
from sreagent.runtime._view import EvidenceView

_METRIC = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(\{(?P<labels>[^}]*)\})?$")


def parse_metric(text: str) -> tuple[str, dict[str, str]]:
    """``pressure_some_ratio{resource=cpu}`` -> (``pressure_some_ratio``, {resource: cpu})."""
    m = _METRIC.match(text)
    if not m:
        return text, {}
    labels = dict(p.split("=", 1) for p in (m.group("labels") or "").split(",") if "=" in p)
    return m.group("name"), labels


def verify(execution: Artifact, proposal: Artifact, view: EvidenceView,
           ctx: RoleContext) -> Artifact:
    """verification_result over ``view`` (which must reach past the action to say anything)."""
    assert isinstance(execution.payload, ExecutionResult)
    assert isinstance(proposal.payload, RemediationProposal)
    cfg = ctx.config.verification
    actions = {a.action_id: a for a in proposal.payload.actions}
    t_action = execution.logical_time
    verdicts: list[Verdict] = []
    refs: list[EvidenceRef] = []
    for r in execution.payload.results:
        a = actions.get(r.action_id)
        if r.outcome != "executed" or a is None or a.safety_class == "read_only":
            continue
        name, labels = parse_metric(a.expected_metric)
        s = view.get(name, a.expected_entity, **labels)
        base = dict(action_id=a.action_id, metric=a.expected_metric, entity=a.expected_entity)
        if s is None:
            verdicts.append(Verdict(**base, verdict="inconclusive", test="none",
                                    reason="the expected metric is not in the window"))
            continue
        lo = t_action - int(cfg.before_seconds * 1e9)
        before = s.values[(s.ts >= lo) & (s.ts < t_action)]
        after = s.values[s.ts > t_action]
        n0, n1 = int(before.shape[0]), int(after.shape[0])
        stats = dict(before_n=n0, after_n=n1,
                     before_mean=round(float(before.mean()), 9) if n0 else None,
                     after_mean=round(float(after.mean()), 9) if n1 else None)
        if n0 < cfg.min_samples or n1 < cfg.min_samples:
            verdicts.append(Verdict(**base, **stats, verdict="inconclusive",
                                    test="mann_whitney_u",
                                    reason=f"need {cfg.min_samples} samples on each side; "
                                    f"have {n0} before and {n1} after"))
            continue
        test = mann_whitney(before, after, want_down=a.expected_direction == "down",
                            rng=ctx.rng, permutations=cfg.permutations,
                            exact_below=cfg.exact_below)
        improved = test.p_value < cfg.alpha and test.effect >= cfg.min_effect
        verdicts.append(Verdict(
            **base, **stats, verdict="improved" if improved else "not_improved",
            test=test.method, statistic=round(test.statistic, 6),
            p_value=round(test.p_value, 9), effect_size=round(test.effect, 6),
            reason=(f"{a.expected_direction} as expected: p={test.p_value:.2g}, "
                    f"effect {test.effect:.2f}" if improved else
                    f"no significant move {a.expected_direction}: p={test.p_value:.2g}, "
                    f"effect {test.effect:.2f} (needs p<{cfg.alpha}, effect>="
                    f"{cfg.min_effect})")))
        refs.append(EvidenceRef(entity=a.expected_entity, metric=name, start_ns=max(
            lo, view.start_ns), end_ns=view.end_ns, batch_ids=view.batches_between(
            lo, view.end_ns, limit=8)))
    kinds = [v.verdict for v in verdicts]
    if not kinds:
        overall = "nothing_executed"
    elif "not_improved" in kinds:
        overall = "not_improved"
    elif all(k == "improved" for k in kinds):
        overall = "improved"
    else:
        overall = "inconclusive"
    return make_artifact(
        kind=ArtifactKind.VERIFICATION_RESULT, run_id=ctx.run_id,
        incident_id=execution.incident_id, logical_time=max(view.end_ns, t_action),
        status=ArtifactStatus.OK if verdicts else ArtifactStatus.NO_DATA,
        payload=VerificationResult(overall=overall, verdicts=verdicts),
        input_artifact_ids=[execution.artifact_id, proposal.artifact_id], evidence_refs=refs,
    )


__all__ = ["parse_metric", "verify"]
