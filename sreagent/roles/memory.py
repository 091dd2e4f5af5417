"""Memory: the incident report (timeline, hypotheses, actions, verification, open questions)
and similar past incidents from incident memory, by signal fingerprint."""

from __future__ import annotations

from sreagent.artifacts import (
    AnomalyFinding,
    Artifact,
    ArtifactKind,
    ExecutionPlan,
    ExecutionResult,
    IncidentReport,
    RootCauseHypothesis,
    SimilarIncident,
    TimelineEntry,
    VerificationResult,
    make_artifact,
)
from sreagent.roles.knowledge import PastIncident
from sreagent.runtime._context import RoleContext


def signature_of(finding: Artifact, hypothesis: Artifact | None) -> dict[str, float]:
    """The signal fingerprint memory compares: risky families, plus the top class."""
    assert isinstance(finding.payload, AnomalyFinding)
    sig: dict[str, float] = {}
    if finding.payload.incident is not None:
        for fam in finding.payload.incident.fingerprint.split("+"):
            if fam and fam != "unknown":
                sig[f"family:{fam}"] = 1.0
    for f in finding.payload.findings:
        if f.detector not in ("joint_risk", "recurring_burst"):
            key = f"metric:{f.metric.split('{')[0]}@{f.entity.split('/')[0]}"
            sig[key] = max(sig.get(key, 0.0), round(min(1.0, f.score), 6))
    if hypothesis is not None and isinstance(hypothesis.payload, RootCauseHypothesis) and \
            hypothesis.payload.hypotheses:
        sig[f"class:{hypothesis.payload.hypotheses[0].fault_class}"] = 2.0
    return dict(sorted(sig.items()))


def past_incident(report: Artifact, signature: dict[str, float]) -> PastIncident:
    """What incident memory keeps of a report (the runtime appends it after the run)."""
    assert isinstance(report.payload, IncidentReport)
    top = report.payload.top_hypotheses[0].fault_class if report.payload.top_hypotheses \
        else "unknown"
    return PastIncident(report.incident_id, top, signature)


def remember(finding: Artifact, hypothesis: Artifact, plan: Artifact | None,
             execution: Artifact | None, verification: Artifact | None,
             ctx: RoleContext) -> Artifact:
    """incident_report for the operator."""
    fp = finding.payload
    assert isinstance(fp, AnomalyFinding)
    hp = hypothesis.payload
    assert isinstance(hp, RootCauseHypothesis)
    timeline: list[TimelineEntry] = []
    joint = [f for f in fp.findings if f.detector == "joint_risk"]
    for f in sorted((f for f in fp.findings if f.detector not in ("joint_risk",
                                                                    "recurring_burst")),
                    key=lambda f: (f.onset_ns, f.metric, f.entity))[:8]:
        timeline.append(TimelineEntry(ts_ns=f.onset_ns, what=f"{f.metric} on {f.entity}: "
                                      f"{f.detector}, {f.severity} (value {f.value:g})"[:1024],
                                      artifact_kind=ArtifactKind.ANOMALY_FINDING))
    if joint:
        timeline.append(TimelineEntry(
            ts_ns=joint[0].onset_ns, what=f"incident opened (joint risk {joint[0].value:.2f})",
            artifact_kind=ArtifactKind.ANOMALY_FINDING))
    if hp.hypotheses:
        h = hp.hypotheses[0]
        timeline.append(TimelineEntry(ts_ns=hypothesis.logical_time,
                                      what=f"top hypothesis: {h.title} ({h.confidence:.0%})",
                                      artifact_kind=ArtifactKind.ROOT_CAUSE_HYPOTHESIS))
    actions = []
    if plan is not None and isinstance(plan.payload, ExecutionPlan):
        counts: dict[str, int] = {}
        for d in plan.payload.decisions:
            counts[d.decision] = counts.get(d.decision, 0) + 1
        timeline.append(TimelineEntry(
            ts_ns=plan.logical_time, artifact_kind=ArtifactKind.EXECUTION_PLAN,
            what="policy: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))))
    if execution is not None and isinstance(execution.payload, ExecutionResult):
        actions = list(execution.payload.results)
        ran = [r for r in actions if r.outcome in ("executed", "failed", "skipped")]
        if ran:
            timeline.append(TimelineEntry(
                ts_ns=execution.logical_time, artifact_kind=ArtifactKind.EXECUTION_RESULT,
                what=f"executed {len(ran)} actions"))
    overall = "nothing_executed"
    if verification is not None and isinstance(verification.payload, VerificationResult):
        overall = verification.payload.overall
        timeline.append(TimelineEntry(ts_ns=verification.logical_time, what=f"verification: "
                                      f"{overall}", artifact_kind=ArtifactKind.VERIFICATION_RESULT))
    timeline.sort(key=lambda e: (e.ts_ns, e.what))
    questions: list[str] = []
    top = hp.hypotheses[:3]
    if len(top) >= 2 and top[1].score >= 0.8 * top[0].score:
        questions.append(f"#{top[1].rank} ({top[1].fault_class} on {top[1].entity}) scores "
                         f"within 20% of #1: run both sets of next diagnostics")
    if top:
        questions.extend(f"counter-evidence for #1: {c}" for c in top[0].counter_evidence[:3])
    else:
        questions.append("no hypothesis explains the findings; the catalogue may lack this "
                         "fault class")
    pending = [r for r in actions if r.outcome == "pending_approval"]
    if pending:
        questions.append(f"{len(pending)} actions wait for an approval")
    if overall == "inconclusive":
        questions.append("verification was inconclusive: re-verify with a longer after-window")
    sig = signature_of(finding, hypothesis)
    similar = []
    if ctx.memory is not None and ctx.config.similar_incidents:
        for past, sim in ctx.memory.similar(sig, top_k=ctx.config.similar_incidents,
                                            exclude=[finding.incident_id]):
            similar.append(SimilarIncident(incident_id=past.incident_id,
                                           fault_class=past.fault_class, similarity=sim))
    title = top[0].title if top else "Anomaly without a ranked cause"
    cited = sorted({rb for h in top for rb in h.runbook_refs})
    lines = [f"{fp.summary}."]
    for h in top:
        lines.append(f"#{h.rank} {h.title}: score {h.score:.2f}, confidence "
                     f"{h.confidence:.0%}; evidence: "
                     + ", ".join(f"{r.metric} on {r.entity}" for r in h.evidence_refs[:3]))
    if cited:
        lines.append("Runbooks: " + ", ".join(f"docs/runbooks/{rb}.md" for rb in cited) + ".")
    if similar:
        lines.append("Similar past incidents: " + ", ".join(
            f"{s.incident_id} ({s.fault_class}, {s.similarity:.2f})" for s in similar) + ".")
    severity = fp.risk_level
    inputs = [a.artifact_id for a in (finding, hypothesis, plan, execution, verification)
              if a is not None]
    return make_artifact(
        kind=ArtifactKind.INCIDENT_REPORT, run_id=ctx.run_id, incident_id=finding.incident_id,
        logical_time=max(a.logical_time for a in (finding, hypothesis, plan, execution,
                                                  verification) if a is not None),
        payload=IncidentReport(
            title=title[:1024], severity=severity, summary="\n".join(lines)[:16_000],
            fingerprint=fp.incident.fingerprint if fp.incident else "unknown",
            timeline=timeline, top_hypotheses=top, actions=actions,
            verification=overall,
            open_questions=[q[:1024] for q in questions], similar_incidents=similar),
        input_artifact_ids=inputs,
        evidence_refs=[r for h in top[:1] for r in h.evidence_refs[:6]],
    )
