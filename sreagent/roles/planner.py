"""Planner: remediation proposals from the action catalogue for the top hypotheses.

For each of the top hypotheses it proposes the class's read-only diagnostic first, then each
remediation the catalogue has for the class, least risky first. Parameters come from the
hypothesis's entity and the telemetry; an action whose command cannot be filled safely is
left out (and said so in the summary), never guessed.
"""

from __future__ import annotations

import numpy as np

from sreagent.actions.catalogue import DEFAULT_CATALOGUE, ActionSpec, Catalogue
from sreagent.artifacts import (
    Artifact,
    ArtifactKind,
    ArtifactStatus,
    Hypothesis,
    ProposedAction,
    RemediationProposal,
    RootCauseHypothesis,
    make_artifact,
)
from sreagent.canonical import canonical_digest
from sreagent.errors import BadInput
from sreagent.roles._processes import process_rows
from sreagent.runtime._context import RoleContext
from sreagent.runtime._view import EvidenceView
from sreagent.telemetry.names import METRICS_BY_NAME

TOP_HYPOTHESES = 2
MIN_CONFIDENCE = 0.2


def _median(view: EvidenceView, metric: str, entity: str) -> float | None:
    s = view.get(metric, entity)
    return float(np.median(s.values)) if s is not None and len(s) else None


def _unit_of_cgroup(path: str) -> str | None:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return last if last.endswith((".service", ".scope", ".slice")) else None


def parameters_for(h: Hypothesis, spec: ActionSpec, view: EvidenceView) -> dict[str, str]:
    kind, _, ident = h.entity.partition("/")
    p: dict[str, str] = {"node": view.host}
    if kind == "process":
        p["pid"] = ident
        procs = view.processes
        if not procs.is_empty() and "cgroup" in procs.columns and ident.isdigit():
            rows = process_rows(view, int(ident))
            if rows.height:
                unit = _unit_of_cgroup(str(rows["cgroup"][-1]))
                if unit:
                    p["unit"] = unit
        p["count"] = "65536"
        p["old_count"] = "the previous limit (prlimit --pid {pid} --nofile shows it)"
    elif kind == "cgroup":
        unit = _unit_of_cgroup(ident)
        if unit:
            p["unit"] = unit
        limit = _median(view, "cgroup_cpu_limit_cores", h.entity)
        if limit:
            p["percent"] = str(round(limit * 200))
            p["old_percent"] = str(round(limit * 100))
    elif kind == "disk":
        p["dev"] = ident
    elif kind == "fs":
        p["mount"] = ident if ident.startswith("/") else "/" + ident
    elif kind == "nic":
        p["nic"] = ident
    elif kind == "gpu":
        p["gpu"] = ident
        limit = _median(view, "gpu_power_limit_watts", h.entity)
        default = None
        if view.inventory:
            for g in view.inventory.gpus:
                if str(g.index) == ident and g.power_cap_watts:
                    default = g.power_cap_watts
        if spec.name == "lower_gpu_power_limit" and limit:
            p["watts"] = str(int(limit * 0.8))
            p["old_watts"] = str(int(limit))
        elif spec.name == "restore_gpu_power_limit" and default:
            p["watts"] = str(int(default))
            p["old_watts"] = str(int(limit)) if limit else "the current limit"
    elif kind == "ib":
        dev, _, port = ident.partition("/")
        p["ibdev"], p["port"] = dev, port or "1"
    if spec.name == "raise_somaxconn":
        p["count"], p["old_count"] = "4096", "the previous value (sysctl net.core.somaxconn)"
    if spec.name == "lower_swappiness":
        p["old_count"] = "the previous value (sysctl vm.swappiness)"
    return p


def _target_kind_matches(spec: ActionSpec, h: Hypothesis) -> bool:
    kind = h.entity.split("/", 1)[0]
    if spec.target_kind == "host":
        return True
    if spec.target_kind == "cgroup" and kind == "process":
        return True  # acts on the process's unit
    return spec.target_kind == kind


def plan(hypothesis: Artifact, view: EvidenceView, ctx: RoleContext) -> Artifact:
    """remediation_proposal for the top hypotheses (confidence at least MIN_CONFIDENCE)."""
    assert isinstance(hypothesis.payload, RootCauseHypothesis)
    catalogue: Catalogue = ctx.catalogue or DEFAULT_CATALOGUE
    actions: list[ProposedAction] = []
    skipped: list[str] = []
    top = [h for h in hypothesis.payload.hypotheses[:TOP_HYPOTHESES]
           if h.rank == 1 or h.confidence >= MIN_CONFIDENCE]
    for h in top:
        for spec in catalogue.for_class(h.fault_class):
            if not _target_kind_matches(spec, h):
                continue
            params = parameters_for(h, spec, view)
            try:
                spec.command(params)
            except BadInput as err:
                skipped.append(f"{spec.name} on {h.entity}: {err.message}")
                continue
            used = {k: v for k, v in sorted(params.items()) if "{" + k + "}" in
                    " ".join(spec.argv) + spec.rollback}
            target = "host" if spec.target_kind == "host" else h.entity
            metric_kind = METRICS_BY_NAME[spec.expected_metric].entity \
                if spec.expected_metric in METRICS_BY_NAME else "host"
            expected_entity = "host" if metric_kind == "host" else h.entity
            expected_metric = spec.expected_metric
            if expected_metric == "pressure_some_ratio":
                expected_metric = "pressure_some_ratio{resource=cpu}"
            actions.append(ProposedAction(
                action_id="act-" + canonical_digest([hypothesis.incident_id, spec.name,
                                                     target])[:16],
                action=spec.name, target=target, safety_class=spec.safety_class,
                parameters=used, rationale=f"{spec.description} (for hypothesis #{h.rank}: "
                f"{h.title})"[:1024], rollback=spec.rollback_text(params)[:1024],
                expected_metric=expected_metric, expected_entity=expected_entity,
                expected_direction=spec.expected_direction, hypothesis_rank=h.rank,
                runbook_refs=h.runbook_refs))
    summary = f"{len(actions)} actions for {len(top)} hypotheses"
    if skipped:
        summary += "; left out (parameters unknown or unsafe): " + "; ".join(skipped[:4])
    return make_artifact(
        kind=ArtifactKind.REMEDIATION_PROPOSAL, run_id=ctx.run_id,
        incident_id=hypothesis.incident_id, logical_time=hypothesis.logical_time,
        status=ArtifactStatus.OK if actions else ArtifactStatus.NO_DATA,
        payload=RemediationProposal(actions=actions, summary=summary[:1024]),
        input_artifact_ids=[hypothesis.artifact_id],
    )
