"""The chain runner: observer -> analyzer -> planner -> policy gate -> executor -> verifier
-> memory, over one host's window, with every effect going through recorded activities.

This is the one interface the controller's workflow engine and the replay engine call:

    chain = Chain(config=ChainConfig(), runbooks=load_runbooks(Path("docs/runbooks")))
    result = chain.run(view, run_id="run-...", activities=LiveActivities({...}))
    # later, replay:
    again = chain.run(view, run_id=result.run_id,
                      activities=ReplayActivities(result.activity_records))
    assert [a.artifact_id for a in again.artifacts] == [a.artifact_id for a in result.artifacts]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sreagent.actions import ApprovalBook, ExecutionLedger, execute_action_handler
from sreagent.actions.catalogue import DEFAULT_CATALOGUE, Catalogue
from sreagent.artifacts import AnomalyFinding, Artifact, ArtifactKind, RootCauseHypothesis
from sreagent.canonical import canonical_digest
from sreagent.errors import BadInput
from sreagent.evidence import ActivityRecord
from sreagent.roles import (
    detect,
    execute,
    gate,
    hypothesise,
    observe,
    past_incident,
    plan,
    remember,
    signature_of,
    verify,
)
from sreagent.roles.knowledge import IncidentMemory, RunbookIndex
from sreagent.runtime._activities import Activities, Handler, LiveActivities, ReplayActivities
from sreagent.runtime._config import ChainConfig
from sreagent.runtime._context import LogicalClock, RoleContext
from sreagent.runtime._guard import forbid_effects
from sreagent.runtime._view import EvidenceView

DEFAULT_RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
"""The starter runbooks shipped in the repository."""


def load_runbooks(folder: Path | str) -> RunbookIndex:
    """Read every ``*.md`` in a folder into a retriever (the only I/O around runbooks)."""
    root = Path(folder)
    if not root.is_dir():
        raise BadInput("runbook folder does not exist", path=str(root))
    texts = {p.stem: p.read_text(encoding="utf-8") for p in sorted(root.glob("*.md"))
             if p.name.lower() != "readme.md"}
    return RunbookIndex.from_texts(texts)


def live_activities(*, ledger: ExecutionLedger | None = None,
                    approvals: ApprovalBook | None = None,
                    llm: Handler | None = None) -> LiveActivities:
    """Activities for a live run: actions through an idempotent ledger, approvals from a book,
    and (optionally) a language model."""
    acts = LiveActivities()
    acts.register("execute_action", execute_action_handler(ledger or ExecutionLedger()))
    acts.register("approval", approvals or ApprovalBook())
    if llm is not None:
        acts.register("llm_complete", llm)
    return acts


def run_id_for(view: EvidenceView, config: ChainConfig) -> str:
    """A deterministic run id: host, window and configuration."""
    return "run-" + canonical_digest([view.host, view.start_ns, view.end_ns,
                                      config.digest()])[:20]


@dataclass(frozen=True)
class ChainResult:
    run_id: str
    artifacts: tuple[Artifact, ...]
    activity_records: tuple[ActivityRecord, ...]
    memory: IncidentMemory
    """Incident memory after this run (with this incident appended when one was reported)."""

    def of_kind(self, kind: ArtifactKind | str) -> Artifact | None:
        kind = ArtifactKind(kind)
        return next((a for a in self.artifacts if a.kind == kind), None)

    @property
    def incident_id(self) -> str | None:
        f = self.of_kind(ArtifactKind.ANOMALY_FINDING)
        if f is None or not isinstance(f.payload, AnomalyFinding) or f.payload.incident is None:
            return None
        return f.payload.incident.incident_id

    @property
    def incident_open(self) -> bool:
        return self.incident_id is not None

    @property
    def top(self) -> tuple[str, str] | None:
        """(fault class, entity) of the top hypothesis, if any."""
        h = self.of_kind(ArtifactKind.ROOT_CAUSE_HYPOTHESIS)
        if h is None or not isinstance(h.payload, RootCauseHypothesis) or \
                not h.payload.hypotheses:
            return None
        first = h.payload.hypotheses[0]
        return first.fault_class, first.entity


@dataclass
class Chain:
    """The configured chain; call :meth:`run` once per host window."""

    config: ChainConfig = field(default_factory=ChainConfig)
    catalogue: Catalogue = DEFAULT_CATALOGUE
    runbooks: RunbookIndex | None = None
    memory: IncidentMemory = field(default_factory=IncidentMemory)
    guard: bool = True
    """Run the roles under the effects guard (clock, randomness and I/O raise)."""

    def context(self, run_id: str, now_ns: int, activities: Activities) -> RoleContext:
        return RoleContext(config=self.config, run_id=run_id, clock=LogicalClock(now_ns),
                           activities=activities, catalogue=self.catalogue,
                           runbooks=self.runbooks, memory=self.memory)

    def run(self, view: EvidenceView, *, run_id: str | None = None,
            activities: Activities | None = None, prior: Artifact | None = None,
            verify_view: EvidenceView | None = None) -> ChainResult:
        """Run the whole chain over ``view``.

        ``activities``: :class:`LiveActivities` to act (and record), or
        :class:`ReplayActivities` to feed a recording back; the default records nothing and
        refuses every activity, which only matters when the posture lets something run.
        ``prior``: the previous window's anomaly_finding of this host (incident hysteresis).
        ``verify_view``: a later window for the verifier; by default the same view, whose
        after-window is empty, so anything executed is verified as inconclusive.
        """
        run_id = run_id or run_id_for(view, self.config)
        acts = activities if activities is not None else ReplayActivities(())
        ctx = self.context(run_id, view.end_ns, acts)
        artifacts: list[Artifact] = []
        memory = self.memory
        if self.guard:
            with forbid_effects():
                artifacts = self._roles(view, ctx, prior, verify_view)
        else:
            artifacts = self._roles(view, ctx, prior, verify_view)
        report = next((a for a in artifacts if a.kind == ArtifactKind.INCIDENT_REPORT), None)
        if report is not None:
            finding = artifacts[1]
            hyp = next(a for a in artifacts if a.kind == ArtifactKind.ROOT_CAUSE_HYPOTHESIS)
            memory = memory.remember(past_incident(report, signature_of(finding, hyp)))
        records = tuple(getattr(acts, "records", ()))
        return ChainResult(run_id, tuple(artifacts), records, memory)

    def _roles(self, view: EvidenceView, ctx: RoleContext, prior: Artifact | None,
               verify_view: EvidenceView | None) -> list[Artifact]:
        observation = observe(view, ctx)
        finding = detect(observation, view, ctx, prior)
        out = [observation, finding]
        assert isinstance(finding.payload, AnomalyFinding)
        incident = finding.payload.incident
        if incident is None or incident.state == "none":
            return out
        hypothesis = hypothesise(finding, view, ctx)
        proposal = plan(hypothesis, view, ctx)
        decisions = gate(proposal, ctx)
        execution = execute(decisions, proposal, ctx)
        verification = verify(execution, proposal, verify_view or view, ctx)
        report = remember(finding, hypothesis, decisions, execution, verification, ctx)
        return [*out, hypothesis, proposal, decisions, execution, verification, report]


def artifact_ids(artifacts: Sequence[Artifact]) -> list[str]:
    return [a.artifact_id for a in artifacts]
