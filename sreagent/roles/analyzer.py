"""Analyzer: anomaly findings with incident state, and ranked root-cause hypotheses.

``detect`` runs the detectors (sreagent.roles._detectors), turns the per-sample joint risk
into an incident with hysteresis (opens once the risk reaches ``min_risk_to_open``, closes
after ``close_samples`` samples below ``max_risk_to_close``), groups it by host and signal
fingerprint, and lets a window whose fingerprint repeats an open incident's join that run.

``hypothesise`` scores every fault class of the catalogue over the incident's interval,
ranks the candidates by score (features written into the artifact), attaches evidence,
counter-evidence, next diagnostics and runbooks, and optionally lets a language model
re-order them (never add to them) through a recorded activity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sreagent.artifacts import (
    AnomalyFinding,
    Artifact,
    ArtifactKind,
    ArtifactStatus,
    EvidenceRef,
    Finding,
    Hypothesis,
    IncidentState,
    RootCauseHypothesis,
    make_artifact,
)
from sreagent.canonical import canonical_digest
from sreagent.roles import _llm_rerank
from sreagent.roles._catalogue import BY_NAME
from sreagent.roles._detectors import ATTRIBUTION_FAMILIES, Detection, SeriesDetection
from sreagent.roles._detectors import detect as run_detectors
from sreagent.roles._hypotheses import Candidate, Scope, candidates
from sreagent.roles._stats import hysteresis, runs
from sreagent.roles.observer import NO_INCIDENT
from sreagent.runtime._context import RoleContext
from sreagent.runtime._view import EvidenceView

MAX_FINDINGS = 40
SEVERITY_OF_SCORE = ((1.0, "critical"), (0.75, "error"), (0.3, "warning"), (0.0, "info"))


def detection_of(view: EvidenceView, ctx: RoleContext) -> Detection:
    """The detections of this view under this config (computed once, shared by roles)."""
    key = ("detection", ctx.config.digest())
    found = view.memo.get(key)
    if found is None:
        found = run_detectors(view, ctx.config)
        view.memo[key] = found
    return found  # type: ignore[return-value]


@dataclass(frozen=True)
class Incident:
    opened_index: int | None
    closed_index: int | None
    state: str
    incident_id: str
    fingerprint: str
    signature: dict[str, float]


def _risk_level(risk: float) -> str:
    if risk >= 0.9:
        return "critical"
    if risk >= 0.7:
        return "high"
    if risk >= 0.45:
        return "medium"
    return "low" if risk > 0 else "none"


def _incident(det: Detection, view: EvidenceView, ctx: RoleContext,
              prior: Artifact | None) -> Incident:
    cfg = ctx.config.detection
    hot = det.risk >= cfg.min_risk_to_open
    cool = det.risk < cfg.max_risk_to_close
    prior_state = prior.payload.incident if prior is not None and isinstance(
        prior.payload, AnomalyFinding) else None
    prior_open = prior_state is not None and prior_state.state in ("opened", "updated")
    active = hysteresis(hot, cool, 1, cfg.close_samples)
    if prior_open and not hot[:1].any():
        # The incident was open at the end of the previous window: it stays open until
        # close_samples cool samples pass here too.
        lead = hysteresis(np.ones_like(hot), cool, 1, cfg.close_samples)
        first_closed = np.nonzero(~lead)[0]
        stop = int(first_closed[0]) if first_closed.shape[0] else hot.shape[0]
        active[:stop] = True
    spans = runs(active)
    if not spans:
        if prior_open and prior_state is not None:
            return Incident(None, 0, "closed", prior_state.incident_id, prior_state.fingerprint,
                            {})
        return Incident(None, None, "none", NO_INCIDENT, "", {})
    # The most recent run is the incident this window speaks for; an earlier one in the same
    # window has already closed again.
    i0, stop = spans[-1]
    closed = stop if stop < active.shape[0] else None
    signature = {name: float(round(fam[i0:stop].max(), 6))
                 for name, fam in sorted(det.family_risk.items())
                 if fam[i0:stop].max() >= 0.3}
    fingerprint = "+".join(signature) or "unknown"
    if prior_open and prior_state is not None and (
            prior_state.fingerprint == fingerprint or i0 == 0):
        # Still the same run, or the same shape again: it joins the open incident.
        return Incident(i0, closed, "updated" if closed is None else "closed",
                        prior_state.incident_id, prior_state.fingerprint, signature)
    incident_id = ctx.incident_id or "inc-" + canonical_digest(
        [view.host, fingerprint, int(det.grid[i0])])[:16]
    return Incident(i0, closed, "opened" if closed is None else "closed", incident_id,
                    fingerprint, signature)


def _finding(d: SeriesDetection, view: EvidenceView) -> tuple[Finding, EvidenceRef]:
    hit = np.nonzero(d.score > 0)[0]
    first, last = int(hit[0]), int(hit[-1])
    # The run started a few samples before it counted (persistence): report that start.
    start = first
    while start > 0 and (d.static_level[start - 1] > 0 or d.z[start - 1] >= 3.0):
        start -= 1
    peak_i = int(hit[np.argmax(d.values[hit] if d.rule.direction == "up" else -d.values[hit])])
    score = float(d.score.max())
    severity = next(name for bound, name in SEVERITY_OF_SCORE if score >= bound)
    t0, t1 = int(d.series.ts[start]), int(d.series.ts[last])
    metric = d.series.metric
    label = ",".join(f"{k}={v}" for k, v in d.series.labels)
    name = f"{metric}{{{label}}}" if label else metric
    finding = Finding(
        detector=d.detector, metric=name, entity=d.series.entity, onset_ns=t0,
        severity=severity, score=round(score, 6), value=round(float(d.values[peak_i]), 9),
        baseline=round(d.base.median, 9), threshold=None if d.warn is None else
        round(float(d.warn), 9), direction=d.rule.direction,
    )
    ref = EvidenceRef(entity=d.series.entity, metric=metric, start_ns=t0, end_ns=t1,
                      batch_ids=view.batches_between(t0, t1, limit=8))
    return finding, ref


def detect(observation: Artifact, view: EvidenceView, ctx: RoleContext,
           prior: Artifact | None = None) -> Artifact:
    """anomaly_finding: what fired, the joint risk, and the incident it opens or continues.

    ``prior`` is the previous window's anomaly_finding of the same host (hysteresis across
    windows); None for a first or stand-alone window.
    """
    det = detection_of(view, ctx)
    inc = _incident(det, view, ctx, prior)
    fired = [d for d in det.series if d.fired]
    findings: list[tuple[Finding, EvidenceRef]] = [_finding(d, view) for d in fired]
    for e in det.events:
        findings.append((
            Finding(detector="event", metric=f"event:{e.kind}", entity=e.entity, onset_ns=e.ts_ns,
                    severity="critical" if e.score >= 0.9 else "error" if e.score >= 0.75
                    else "warning", score=round(e.score, 6), value=1.0, direction="event"),
            EvidenceRef(entity=e.entity, metric=f"event:{e.kind}", start_ns=e.ts_ns,
                        end_ns=e.ts_ns, batch_ids=[e.batch_id])))
    findings.sort(key=lambda f: (-(f[0].score if f[0].detector != "recurring_burst" else 0.0),
                                 f[0].onset_ns, f[0].metric, f[0].entity))
    findings = findings[:MAX_FINDINGS]
    max_risk = float(det.risk.max(initial=0.0))
    if inc.opened_index is not None:
        t_open = int(det.grid[inc.opened_index])
        findings.insert(0, (
            Finding(detector="joint_risk", metric="joint_risk", entity="host", onset_ns=t_open,
                    severity="error" if max_risk >= 0.7 else "warning",
                    score=round(max_risk, 6), value=round(max_risk, 6),
                    threshold=ctx.config.detection.min_risk_to_open),
            EvidenceRef(entity="host", metric="joint_risk", start_ns=t_open, end_ns=view.end_ns,
                        batch_ids=view.batches_between(t_open, t_open, limit=2))))
    incident = None if inc.state == "none" else IncidentState(
        incident_id=inc.incident_id, fingerprint=inc.fingerprint or "unknown",
        state=inc.state)
    routine = sum(1 for d in fired if d.routine)
    summary = (f"{len(fired)} series and {len(det.events)} events fired "
               f"({routine} routine bursts); peak joint risk {max_risk:.2f}; "
               + (f"incident {inc.incident_id} {inc.state} on {inc.fingerprint}"
                  if incident else "no incident"))
    payload = AnomalyFinding(
        risk_level=_risk_level(max_risk) if incident else ("low" if fired else "none"),
        findings=[f for f, _ in findings], incident=incident, summary=summary[:1024])
    inputs = [observation.artifact_id] + ([prior.artifact_id] if prior is not None else [])
    return make_artifact(
        kind=ArtifactKind.ANOMALY_FINDING, run_id=ctx.run_id, incident_id=inc.incident_id,
        logical_time=view.end_ns, payload=payload, input_artifact_ids=inputs,
        evidence_refs=[r for _, r in findings[:12]],
    )


def incident_window(finding: Artifact, view: EvidenceView, ctx: RoleContext) -> tuple[int, int]:
    """The interval [t0, t1] the hypotheses are scored over (the incident's onset to its end)."""
    assert isinstance(finding.payload, AnomalyFinding)
    det = detection_of(view, ctx)
    joint = [f for f in finding.payload.findings if f.detector == "joint_risk"]
    t_open = joint[0].onset_ns if joint else view.start_ns
    onsets = [f.onset_ns for f in finding.payload.findings
              if f.detector not in ("joint_risk", "recurring_burst") and f.onset_ns <= t_open
              and f.onset_ns >= det.base_end_ns]
    t0 = min(onsets, default=t_open)
    return max(t0, det.base_end_ns), view.end_ns


_ENTITY_KINDS = {"host": "host", "process": "process", "cgroup": "cgroup", "disk": "disk",
                 "fs": "filesystem", "nic": "nic", "gpu": "gpu", "ib": "link",
                 "service": "service"}


def entity_kind_of(entity: str) -> str:
    """The artifact's entity kind for an entity string (``fs/data`` -> ``filesystem``)."""
    return _ENTITY_KINDS.get(entity.split("/", 1)[0], "other")


def _confidence(score: float, total: float) -> float:
    # Half from how strong the evidence is on its own, half from its share of all the
    # evidence: a lone strong hypothesis is confident, two equal ones are not.
    strength = min(1.0, max(0.0, score))
    share = score / total if total > 0 else 0.0
    return round(min(1.0, 0.5 * strength + 0.5 * share), 6)


def hypothesise(finding: Artifact, view: EvidenceView, ctx: RoleContext) -> Artifact:
    """root_cause_hypothesis: ranked, localised candidates with their features."""
    assert isinstance(finding.payload, AnomalyFinding)
    det = detection_of(view, ctx)
    t0, t1 = incident_window(finding, view, ctx)
    scope = Scope(view, det, t0, t1)
    cands = [c for c in candidates(scope) if c.score > 0.05]
    cands.sort(key=lambda c: (-round(c.score, 9), c.fault_class, c.entity))
    # One hypothesis per (class, entity); keep the best.
    seen: set[tuple[str, str]] = set()
    unique: list[Candidate] = []
    for c in cands:
        if (c.fault_class, c.entity) not in seen:
            seen.add((c.fault_class, c.entity))
            unique.append(c)
    unique = unique[: ctx.config.max_hypotheses]
    total = sum(max(c.score, 0.0) for c in unique)
    hypotheses = []
    for rank, c in enumerate(unique, start=1):
        fc = BY_NAME[c.fault_class]
        quiet = [f"{k.replace('_', ' ')} stayed near baseline" for k, v in sorted(
            c.features.items()) if v < 0.1 and c.weights.get(k, 0) >= 0.15]
        runbooks = []
        if ctx.runbooks is not None and ctx.config.runbooks_per_hypothesis:
            query = " ".join((*fc.keywords, *sorted({r.metric for r in c.refs})))
            runbooks = [h.name for h in ctx.runbooks.search(
                query, fault_class=c.fault_class, top_k=ctx.config.runbooks_per_hypothesis)]
        features = {k: round(float(v), 6) for k, v in sorted(c.features.items())}
        features.update({f"penalty_{k}": -round(float(v), 6)
                         for k, v in sorted(c.penalties.items())})
        hypotheses.append(Hypothesis(
            rank=rank, fault_class=c.fault_class, entity=c.entity,
            entity_kind=entity_kind_of(c.entity),
            title=fc.title.format(entity=c.entity), score=round(c.score, 6),
            confidence=_confidence(c.score, total), features=features,
            evidence_refs=c.refs[:12], counter_evidence=(c.counter_evidence + quiet)[:8],
            next_diagnostics=list(fc.next_diagnostics), runbook_refs=runbooks))
    ranked_by = "deterministic"
    status = ArtifactStatus.OK if hypotheses else ArtifactStatus.NO_DATA
    if hypotheses and ctx.config.llm.enabled:
        hypotheses, ranked_by = _llm_rerank.rerank(hypotheses, finding, ctx)
    payload = RootCauseHypothesis(hypotheses=hypotheses, ranked_by=ranked_by)
    refs = [r for h in hypotheses[:3] for r in h.evidence_refs[:4]]
    return make_artifact(
        kind=ArtifactKind.ROOT_CAUSE_HYPOTHESIS, run_id=ctx.run_id,
        incident_id=finding.incident_id, logical_time=view.end_ns, status=status,
        payload=payload, input_artifact_ids=[finding.artifact_id], evidence_refs=refs,
        recorded_activity_ids=ctx.take_activity_ids(),
    )


# --- Hook (issue 9): imported labelled telemetry goes down the generic series path. ----------
# A window whose batches came from `sreagent import` and in which no series has a detector
# rule (pods, anonymous server metrics, single series) is analysed by sreagent.roles._series;
# every other window - the collector's, the scenario library's, the goldens' - reaches the
# detect/hypothesise above unchanged.
from sreagent.roles._series import route as _route_series  # noqa: E402

detect, hypothesise = _route_series(detect, hypothesise)


__all__ = ["ATTRIBUTION_FAMILIES", "detect", "detection_of", "hypothesise", "incident_window"]
