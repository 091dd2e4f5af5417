"""An evidence package read into the tables a postmortem shows.

Pure reads of a recorded run: no analysis happens here. The hypotheses, decisions and verdicts
are the ones the role chain recorded; these functions only lay them out as rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from sreagent.artifacts import (
    AnomalyFinding,
    Artifact,
    ArtifactKind,
    ExecutionPlan,
    ExecutionResult,
    IncidentReport,
    RemediationProposal,
    RootCauseHypothesis,
    VerificationResult,
)
from sreagent.errors import BadInput
from sreagent.evidence import EvidencePackage, verify_package

SHORT_ID = 12
"""Characters of an artifact id shown in tables (enough to be unique within a run)."""

JOINT_RISK = "joint_risk"
"""The analyzer's detector whose onset is the moment the incident opened."""
ROUTINE = frozenset({"recurring_burst"})
"""Detectors that mark known, routine bursts (cron jobs, backups): not anomalies to plot."""

_LABELLED = re.compile(r"^(?P<name>[^{]+)\{(?P<labels>[^}]*)\}$")


def split_series(metric: str) -> tuple[str, dict[str, str]]:
    """``name{k=v,...}`` as the analyzer writes a labelled series -> (name, labels)."""
    match = _LABELLED.match(metric)
    if match is None:
        return metric, {}
    labels: dict[str, str] = {}
    for part in filter(None, match["labels"].split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise BadInput(f"series labels are k=v pairs, got {part!r}", field=metric)
        labels[key.strip()] = value.strip()
    return match["name"], labels


@dataclass(frozen=True)
class Signal:
    """One series to plot: a metric on an entity, optionally narrowed to one label set."""

    metric: str
    entity: str
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def title(self) -> str:
        labels = ",".join(f"{k}={v}" for k, v in self.labels)
        return (
            f"{self.metric}{{{labels}}} on {self.entity}"
            if labels
            else f"{self.metric} on {self.entity}"
        )


@dataclass(frozen=True)
class Marker:
    """A point in telemetry time worth a vertical rule on the timeline."""

    ts_ns: int
    kind: str
    """``anomaly`` (a finding's onset) or ``action`` (an executed or dry-run action)."""
    label: str


class Postmortem:
    """One recorded run, opened for a postmortem. Build it with :func:`load_postmortem`."""

    def __init__(self, package: EvidencePackage):
        self.package = package
        self.artifacts: tuple[Artifact, ...] = tuple(package.artifacts)
        if not self.artifacts:
            raise BadInput(
                "the package records no artifacts (not a chain run)", path=str(package.path)
            )

    @property
    def path(self) -> Path:
        return self.package.path

    @property
    def run_id(self) -> str:
        return self.package.run_id

    def payload(self, kind: ArtifactKind) -> Any:
        artifact = next((a for a in self.artifacts if a.kind == kind), None)
        return artifact.payload if artifact is not None else None

    @property
    def report(self) -> IncidentReport | None:
        value = self.payload(ArtifactKind.INCIDENT_REPORT)
        return value if isinstance(value, IncidentReport) else None

    @property
    def finding(self) -> AnomalyFinding | None:
        value = self.payload(ArtifactKind.ANOMALY_FINDING)
        return value if isinstance(value, AnomalyFinding) else None

    @property
    def hypotheses(self) -> RootCauseHypothesis | None:
        value = self.payload(ArtifactKind.ROOT_CAUSE_HYPOTHESIS)
        return value if isinstance(value, RootCauseHypothesis) else None

    @property
    def verification(self) -> str:
        value = self.payload(ArtifactKind.VERIFICATION_RESULT)
        return (
            value.overall if isinstance(value, VerificationResult) else "no verification recorded"
        )

    @property
    def run(self) -> dict[str, Any]:
        run: dict[str, Any] = self.package.config.get("run", {})
        return run

    @property
    def host(self) -> str:
        return str(self.run.get("host") or self.package.manifest.model_dump().get("host", ""))

    @property
    def window(self) -> tuple[int, int]:
        window = self.run.get("window")
        if window:
            return int(window[0]), int(window[1])
        times = [a.logical_time for a in self.artifacts]
        return min(times), max(times)

    @property
    def incident_window(self) -> tuple[int, int] | None:
        """From the incident's opening (the joint-risk finding's onset) to the end of the
        analysed window; None when no incident opened."""
        finding = self.finding
        if finding is None or finding.incident is None or finding.incident.state == "none":
            return None
        joint = [f.onset_ns for f in finding.findings if f.detector == JOINT_RISK]
        onsets = joint or [f.onset_ns for f in finding.findings if f.detector not in ROUTINE]
        if not onsets:
            return None
        return min(onsets), self.window[1]

    @property
    def top_hypothesis(self) -> str | None:
        """``fault_class at entity: title`` of the best hypothesis, or None."""
        hypotheses = self.hypotheses
        if hypotheses is None or not hypotheses.hypotheses:
            return None
        top = hypotheses.hypotheses[0]
        return f"{top.fault_class} at {top.entity}: {top.title}"

    @cached_property
    def samples(self) -> pa.Table:
        return self.package.table("samples")

    @property
    def ground_truth(self) -> dict[str, Any] | None:
        """The scenario's ground truth for lab packages (never read by the chain)."""
        truth = self.package.config.get("lab", {}).get("ground_truth")
        return truth if isinstance(truth, dict) else None


def load_postmortem(path: Path | str, *, verify: bool = True) -> Postmortem:
    """Open an evidence package (checked completely first unless ``verify`` is False)."""
    root = Path(path)
    if not (root / "manifest.json").is_file():
        raise BadInput("not an evidence package (no manifest.json)", path=str(root))
    if verify:
        verify_package(root)
    return Postmortem(EvidencePackage(root))


def list_packages(evidence_dir: Path | str) -> list[Path]:
    """Evidence packages directly under ``evidence_dir`` (folders holding a manifest), sorted."""
    root = Path(evidence_dir)
    if not root.is_dir():
        raise BadInput("no such evidence directory", path=str(root))
    return sorted(p for p in root.iterdir() if (p / "manifest.json").is_file())


def _short(artifact_id: str) -> str:
    return artifact_id[:SHORT_ID]


def _headline(artifact: Artifact) -> str:
    p = artifact.payload
    if isinstance(p, AnomalyFinding):
        state = p.incident.state if p.incident else "none"
        return f"risk {p.risk_level}, {len(p.findings)} findings, incident {state}"
    if isinstance(p, RootCauseHypothesis):
        return (
            "; ".join(f"#{h.rank} {h.fault_class}@{h.entity}" for h in p.hypotheses[:3]) or "none"
        )
    if isinstance(p, RemediationProposal):
        return ", ".join(f"{a.action}({a.target})" for a in p.actions) or "no actions"
    if isinstance(p, ExecutionPlan):
        counts: dict[str, int] = {}
        for d in p.decisions:
            counts[d.decision] = counts.get(d.decision, 0) + 1
        return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no decisions"
    if isinstance(p, ExecutionResult):
        return ", ".join(r.outcome for r in p.results) or "nothing run"
    if isinstance(p, VerificationResult):
        return p.overall
    if isinstance(p, IncidentReport):
        return p.title
    return f"{getattr(p, 'batch_count', 0)} batches, {len(getattr(p, 'signals', []))} signals"


def artifact_table(artifacts: tuple[Artifact, ...] | list[Artifact]) -> pl.DataFrame:
    """The artifact chain, one row per artifact: ids shortened, inputs as short ids."""
    return pl.DataFrame(
        {
            "position": list(range(len(artifacts))),
            "kind": [a.kind.value for a in artifacts],
            "artifact": [_short(a.artifact_id) for a in artifacts],
            "producer": [a.producer for a in artifacts],
            "status": [a.status.value for a in artifacts],
            "inputs": [", ".join(_short(i) for i in a.input_artifact_ids) for a in artifacts],
            "evidence": [
                "; ".join(f"{r.metric} on {r.entity}" for r in a.evidence_refs[:4])
                + (f" (+{len(a.evidence_refs) - 4})" if len(a.evidence_refs) > 4 else "")
                for a in artifacts
            ],
            "headline": [_headline(a) for a in artifacts],
        },
        schema={
            "position": pl.Int64,
            "kind": pl.String,
            "artifact": pl.String,
            "producer": pl.String,
            "status": pl.String,
            "inputs": pl.String,
            "evidence": pl.String,
            "headline": pl.String,
        },
    )


def hypothesis_table(pm: Postmortem) -> pl.DataFrame:
    """Each hypothesis: rank, class, entity, score, confidence, the evidence it cites."""
    rows = [
        {
            "rank": h.rank,
            "fault_class": h.fault_class,
            "entity": h.entity,
            "title": h.title,
            "score": h.score,
            "confidence": h.confidence,
            "evidence": ", ".join(f"{r.metric} on {r.entity}" for r in h.evidence_refs),
            "counter_evidence": "; ".join(h.counter_evidence),
            "runbooks": ", ".join(h.runbook_refs),
        }
        for h in (pm.hypotheses.hypotheses if pm.hypotheses else [])
    ]
    schema = {
        "rank": pl.Int64,
        "fault_class": pl.String,
        "entity": pl.String,
        "title": pl.String,
        "score": pl.Float64,
        "confidence": pl.Float64,
        "evidence": pl.String,
        "counter_evidence": pl.String,
        "runbooks": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def action_table(pm: Postmortem) -> pl.DataFrame:
    """Each proposed action with the policy gate's decision and reasons and what happened."""
    proposal = pm.payload(ArtifactKind.REMEDIATION_PROPOSAL)
    plan = pm.payload(ArtifactKind.EXECUTION_PLAN)
    result = pm.payload(ArtifactKind.EXECUTION_RESULT)
    decisions = {d.action_id: d for d in plan.decisions} if isinstance(plan, ExecutionPlan) else {}
    outcomes = (
        {r.action_id: r for r in result.results} if isinstance(result, ExecutionResult) else {}
    )
    rows = []
    for a in proposal.actions if isinstance(proposal, RemediationProposal) else []:
        decision = decisions.get(a.action_id)
        outcome = outcomes.get(a.action_id)
        rows.append(
            {
                "action": a.action,
                "target": a.target,
                "safety_class": a.safety_class,
                "for_hypothesis": a.hypothesis_rank,
                "decision": decision.decision if decision else "not planned",
                "reasons": "; ".join(decision.reasons) if decision else "",
                "command": " ".join(decision.command) if decision else "",
                "outcome": outcome.outcome if outcome else "not run",
            }
        )
    schema: dict[str, Any] = dict.fromkeys(
        ("action", "target", "safety_class", "decision", "reasons", "command", "outcome"),
        pl.String,
    )
    schema["for_hypothesis"] = pl.Int64
    order = [
        "action",
        "target",
        "safety_class",
        "for_hypothesis",
        "decision",
        "reasons",
        "command",
        "outcome",
    ]
    return pl.DataFrame(rows, schema=schema).select(order)


def verification_table(pm: Postmortem) -> pl.DataFrame:
    """The verifier's per-action verdicts (empty when nothing executed)."""
    value = pm.payload(ArtifactKind.VERIFICATION_RESULT)
    rows = [
        {
            "metric": v.metric,
            "entity": v.entity,
            "verdict": v.verdict,
            "test": v.test,
            "p_value": v.p_value,
            "before_mean": v.before_mean,
            "after_mean": v.after_mean,
            "reason": v.reason,
        }
        for v in (value.verdicts if isinstance(value, VerificationResult) else [])
    ]
    schema = {
        "metric": pl.String,
        "entity": pl.String,
        "verdict": pl.String,
        "test": pl.String,
        "p_value": pl.Float64,
        "before_mean": pl.Float64,
        "after_mean": pl.Float64,
        "reason": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def similar_table(pm: Postmortem) -> pl.DataFrame:
    report = pm.report
    rows = [
        {"incident_id": s.incident_id, "fault_class": s.fault_class, "similarity": s.similarity}
        for s in (report.similar_incidents if report else [])
    ]
    schema = {"incident_id": pl.String, "fault_class": pl.String, "similarity": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def timeline_table(pm: Postmortem) -> pl.DataFrame:
    """The incident report's timeline, in telemetry time (UTC)."""
    report = pm.report
    entries = report.timeline if report else []
    return pl.DataFrame(
        {
            "time": [e.ts_ns for e in entries],
            "what": [e.what for e in entries],
            "artifact": [e.artifact_kind.value if e.artifact_kind else "" for e in entries],
        },
        schema={"time": pl.Int64, "what": pl.String, "artifact": pl.String},
    ).with_columns(pl.from_epoch("time", time_unit="ns").dt.replace_time_zone("UTC"))


def key_signals(pm: Postmortem, *, limit: int = 6) -> list[Signal]:
    """The series worth plotting, most important first: what the top hypotheses cite, then
    the anomaly findings' series. Deduplicated; at most ``limit``."""
    seen: list[Signal] = []

    def add(metric: str, entity: str) -> None:
        name, labels = split_series(metric)
        signal = Signal(name, entity, tuple(sorted(labels.items())))
        # A labelled series is already drawn when its whole metric on that entity is.
        covered = Signal(name, entity) in seen
        if name != JOINT_RISK and signal not in seen and not covered:
            seen.append(signal)

    for h in pm.hypotheses.hypotheses[:2] if pm.hypotheses else []:
        for ref in h.evidence_refs:
            add(ref.metric, ref.entity)
    for f in pm.finding.findings if pm.finding else []:
        if f.detector not in ROUTINE:
            add(f.metric, f.entity)
    return seen[:limit]


def hypothesis_signals(pm: Postmortem, rank: int) -> list[Signal]:
    """The series one hypothesis cites as evidence."""
    hypotheses = pm.hypotheses.hypotheses if pm.hypotheses else []
    chosen = next((h for h in hypotheses if h.rank == rank), None)
    if chosen is None:
        raise BadInput(
            f"no hypothesis of rank {rank} (the run has {len(hypotheses)})", field="rank"
        )
    out: list[Signal] = []
    for ref in chosen.evidence_refs:
        name, labels = split_series(ref.metric)
        signal = Signal(name, ref.entity, tuple(sorted(labels.items())))
        if signal not in out:
            out.append(signal)
    return out


def _label_text(labels: Any) -> str:
    pairs = labels.items() if isinstance(labels, dict) else (labels or [])
    return ",".join(f"{k}={v}" for k, v in sorted(pairs))


def signal_frame(samples: pa.Table, signals: list[Signal]) -> pl.DataFrame:
    """Long table ``time, value, signal, series`` of the chosen series. A signal without
    labels keeps every label set of its metric on that entity, one ``series`` each."""
    rows: dict[str, list[Any]] = {"ts_ns": [], "value": [], "signal": [], "series": []}
    for signal in signals:
        mask = pc.and_(
            pc.equal(samples["metric"], signal.metric), pc.equal(samples["entity"], signal.entity)
        )
        picked = samples.filter(mask).select(["ts_ns", "value", "labels"]).to_pydict()
        wanted = dict(signal.labels)
        for ts, value, labels in zip(
            picked["ts_ns"], picked["value"], picked["labels"], strict=True
        ):
            label_map = dict(labels or [])
            if any(label_map.get(k) != v for k, v in wanted.items()):
                continue
            rows["ts_ns"].append(ts)
            rows["value"].append(value)
            rows["signal"].append(signal.title)
            rows["series"].append(_label_text(label_map) or signal.title)
    frame = pl.DataFrame(
        rows,
        schema={"ts_ns": pl.Int64, "value": pl.Float64, "signal": pl.String, "series": pl.String},
    )
    return frame.sort("signal", "series", "ts_ns").select(
        pl.from_epoch("ts_ns", time_unit="ns")
        .dt.cast_time_unit("ms")
        .dt.replace_time_zone("UTC")
        .alias("time"),
        "value",
        "signal",
        "series",
    )


def markers(pm: Postmortem) -> list[Marker]:
    """Anomaly onsets (one per detector, metric and entity) and executed or dry-run actions."""
    out: list[Marker] = []
    for f in pm.finding.findings if pm.finding else []:
        if f.detector in ROUTINE:
            continue
        out.append(Marker(f.onset_ns, "anomaly", f"{f.detector}: {f.metric} on {f.entity}"))
    result = next((a for a in pm.artifacts if a.kind == ArtifactKind.EXECUTION_RESULT), None)
    if result is not None and isinstance(result.payload, ExecutionResult):
        proposal = pm.payload(ArtifactKind.REMEDIATION_PROPOSAL)
        names = (
            {a.action_id: f"{a.action} on {a.target}" for a in proposal.actions}
            if isinstance(proposal, RemediationProposal)
            else {}
        )
        for r in result.payload.results:
            if r.outcome in ("executed", "dry_run", "failed"):
                out.append(
                    Marker(
                        result.logical_time,
                        "action",
                        f"{names.get(r.action_id, r.action_id)}: {r.outcome}",
                    )
                )
    return sorted(set(out), key=lambda m: (m.ts_ns, m.kind, m.label))


def record_lab_package(scenario: str, out: Path | str, *, resolution_s: int = 5) -> Path:
    """Record a scenario of the library as a package (what ``sreagent lab record`` does):
    a deterministic run to open when no package is given."""
    from sreagent.replay._lab import record_scenario

    record_scenario(scenario, out, resolution_s=resolution_s)
    return Path(out)
