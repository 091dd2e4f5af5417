"""The role chain as the controller's workflow engine sees it: named steps.

:class:`RoleChain` satisfies ``sreagent.controller.workflow.Chain``: eight steps, one per
role output, each ``run(prior artifacts, evidence, step context) -> Artifact``. The engine
stores each artifact before the next step runs (crash recovery), gates the executor step
behind an operator approval when the plan asks for one, and performs every effect through
its own idempotent activity store; this module only adapts those interfaces to the roles':

* the engine's evidence (``table(name)`` over the journal) becomes an :class:`EvidenceView`,
  built once per evidence object;
* the engine's ``activity(kind, key, request, effect)`` becomes the roles' activities, keyed
  ``<kind>/<key>`` so an approval and an execution of one action never share a record;
* the engine's approval of the executor step is answered to the executor's ``approval``
  activity (and so recorded, and fed back in replay);
* an action that ran is verified over a later window: the executor step's execution handler
  records when the command started (``started_ns``, an effect's result, fed back in replay),
  the executor dates its artifact there, and the verifier step asks the engine for evidence up
  to ``verify_after_seconds`` past that moment (:meth:`_Step.evidence_until`); the engine
  waits for that telemetry before running it, and the package records the longer
  ``verify_window``;
* :meth:`RoleChain.package_run` turns a finished run into what ``sreagent.replay`` reads: the
  ``sreagent.run/v1`` inputs (configuration, runbook texts, incident memory, window, the
  controller's incident id) and the activity records exactly as the roles saw them, so the
  controller's evidence packages replay identically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sreagent.actions import DEFAULT_CATALOGUE, Catalogue, run_argv
from sreagent.artifacts import Artifact, ArtifactKind, ExecutionPlan, ExecutionResult
from sreagent.evidence import ActivityRecord
from sreagent.roles import detect, execute, gate, hypothesise, observe, plan, remember, verify
from sreagent.roles.knowledge import IncidentMemory, RunbookIndex
from sreagent.runtime import (
    ChainConfig,
    EvidenceView,
    LogicalClock,
    RoleContext,
    activity_id,
    allow_effects,
    forbid_effects,
)

Handler = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]


def _last(inputs: Sequence[Artifact], kind: ArtifactKind) -> Artifact:
    for a in reversed(inputs):
        if a.kind == kind:
            return a
    raise ValueError(f"the chain needs a {kind.value} before this step")


def _role_record(kind: str, key: str, request: dict[str, Any], engine_result: dict[str, Any],
                 logical_time: int) -> ActivityRecord:
    """The activity record a role gets for what the engine's activity store answered; the same
    conversion while the run runs and when its package is written, so replay feeds back
    byte-for-byte what the roles consumed."""
    result = dict(engine_result)
    result.pop("replayed_from_record", None)
    status = str(result.pop("status", "ok"))
    if status == "interrupted":
        # The controller died mid-effect: say so where the executor reports output.
        status = "failed"
        result.setdefault("output", str(result.get("message", "")))
    return ActivityRecord(activity_id=activity_id(kind, key, request), kind=kind, key=key,
                          logical_time=logical_time, status=status, request=request,
                          result=result)


class _EngineActivities:
    def __init__(self, step_ctx: Any, handlers: dict[str, Handler]):
        self._ctx = step_ctx
        self._handlers = handlers
        self.records: list[ActivityRecord] = []

    def perform(self, kind: str, key: str, request: dict[str, Any],
                logical_time: int) -> ActivityRecord:
        if kind == "approval":
            state = self._ctx.approval or "pending"

            def effect() -> dict[str, Any]:
                return {"status": "ok", "state": state, "by": "operator"}
        else:
            handler = self._handlers.get(kind)

            def effect() -> dict[str, Any]:
                if handler is None:
                    return {"status": "unavailable", "reason": f"no handler for {kind}"}
                status, result = handler(request)
                return {"status": status, **result}

        # The role runs under forbid_effects(); its activities are the one sanctioned way out
        # (the engine's idempotency store and the actuator open files and start processes).
        with allow_effects():
            result = dict(self._ctx.activity(kind, f"{kind}/{key}", request, effect))
        record = _role_record(kind, key, request, result, logical_time)
        self.records.append(record)
        return record


def _execute_handler(request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # The engine's activity store already runs each key at most once. The start time is part
    # of the recorded result: the verifier splits before from after there.
    started_ns = time.time_ns()
    result = run_argv([str(a) for a in request["argv"]], float(request["timeout_s"]))
    result["started_ns"] = started_ns
    if result.get("timed_out"):
        return "timeout", result
    return ("ok" if result.get("exit_code") == 0 else "failed"), result


@dataclass
class _Step:
    name: str
    chain: RoleChain
    fn: Callable[[Sequence[Artifact], EvidenceView, RoleContext], Artifact]
    gated: bool = False
    verifies: bool = False

    def needs_approval(self, inputs: Sequence[Artifact], ctx: Any) -> bool:
        if not self.gated:
            return False
        plan_artifact = _last(inputs, ArtifactKind.EXECUTION_PLAN)
        assert isinstance(plan_artifact.payload, ExecutionPlan)
        return any(d.decision == "approval_required" for d in plan_artifact.payload.decisions)

    def evidence_until(self, inputs: Sequence[Artifact]) -> int | None:
        """How far past the run's window this step needs telemetry (the verifier, after an
        action ran: ``verify_after_seconds`` past its start), or None."""
        if not self.verifies or self.chain.verify_after_seconds <= 0:
            return None
        execution = _last(inputs, ArtifactKind.EXECUTION_RESULT)
        assert isinstance(execution.payload, ExecutionResult)
        if not any(r.outcome == "executed" for r in execution.payload.results):
            return None
        return execution.logical_time + int(self.chain.verify_after_seconds * 1e9)

    def run(self, inputs: Sequence[Artifact], evidence: Any, ctx: Any) -> Artifact:
        view = self.chain.view_of(evidence)
        role_ctx = RoleContext(
            config=self.chain.config, run_id=ctx.run_id, clock=LogicalClock(view.end_ns),
            activities=_EngineActivities(ctx, self.chain.handlers),
            catalogue=self.chain.catalogue, runbooks=self.chain.runbooks,
            memory=self.chain.memory, incident_id=ctx.incident_id)
        with forbid_effects():
            return self.fn(inputs, view, role_ctx)


@dataclass
class RoleChain:
    """The eight-step role chain for ``WorkflowEngine(chain=RoleChain(...))``."""

    config: ChainConfig = field(default_factory=ChainConfig)
    catalogue: Catalogue = DEFAULT_CATALOGUE
    runbooks: RunbookIndex | None = None
    memory: IncidentMemory = field(default_factory=IncidentMemory)
    handlers: dict[str, Handler] = field(default_factory=lambda: {
        "execute_action": _execute_handler})
    """Activity handlers besides ``approval`` (add ``llm_complete`` to use a model)."""
    name: str = "sreagent.roles/v1"
    verify_after_seconds: float = 30.0
    """Telemetry after an executed action that the verifier waits for (0: verify over the
    run's own window, whose after-side is empty: inconclusive)."""
    _views: list[tuple[Any, EvidenceView]] = field(default_factory=list, repr=False)

    def view_of(self, evidence: Any) -> EvidenceView:
        """The view of an engine evidence object, built once while the engine uses it (the
        engine makes one evidence object per run advance; the last few are kept)."""
        for known, view in self._views:
            if known is evidence:
                return view
        tables = {n: evidence.table(n) for n in ("samples", "processes", "events", "batches")}
        view = EvidenceView.from_tables(tables, host=evidence.host,
                                        start_ns=evidence.start_ns, end_ns=evidence.end_ns)
        self._views = [*self._views[-3:], (evidence, view)]
        return view

    def package_run(self, run: Mapping[str, Any], activities: Sequence[Mapping[str, Any]],
                    interrupted: Mapping[str, Any], verify_window: tuple[int, int] | None = None,
                    ) -> tuple[dict[str, Any], list[ActivityRecord]]:
        """The ``run`` section (``sreagent.run/v1``) and the activity records of a finished run
        of this chain, for its evidence package.

        ``run``: the engine's run row (run_id, incident_id, host, window); ``activities``: its
        activity-store rows (``key`` is ``<kind>/<role key>``, ``result`` what the effect
        answered, ``status`` ``completed`` or ``started``); ``interrupted``: what the engine
        answers for a ``started`` one (the controller died mid-effect); ``verify_window``: the
        longer window the verifier step read, if it waited for telemetry after an action.
        """
        from sreagent.replay import RunInputs  # the replay engine builds on this package

        window = (int(run["window_start_ns"]), int(run["window_end_ns"]))
        inputs = RunInputs(
            run_id=str(run["run_id"]), host=str(run["host"]), window=window,
            chain=self.config,
            runbooks={b.name: b.text for b in self.runbooks.runbooks} if self.runbooks else {},
            memory=self.memory.incidents, incident_id=str(run["incident_id"]),
            verify_window=verify_window)
        records = []
        for row in activities:
            kind = str(row["kind"])
            key = str(row["key"]).removeprefix(f"{kind}/")
            answered = row["result"] if row["status"] == "completed" else interrupted
            # Every role's clock reads the window's end (LogicalClock(view.end_ns)).
            records.append(_role_record(kind, key, dict(row["request"]), dict(answered or {}),
                                        window[1]))
        return inputs.to_config(), records

    @property
    def steps(self) -> list[_Step]:
        K = ArtifactKind

        def observer(i: Sequence[Artifact], v: EvidenceView, c: RoleContext) -> Artifact:
            return observe(v, c)

        def analyzer(i: Sequence[Artifact], v: EvidenceView, c: RoleContext) -> Artifact:
            return detect(_last(i, K.OBSERVATION_SUMMARY), v, c)

        def hypotheses(i: Sequence[Artifact], v: EvidenceView, c: RoleContext) -> Artifact:
            return hypothesise(_last(i, K.ANOMALY_FINDING), v, c)

        def planner(i: Sequence[Artifact], v: EvidenceView, c: RoleContext) -> Artifact:
            return plan(_last(i, K.ROOT_CAUSE_HYPOTHESIS), v, c)

        def policy(i: Sequence[Artifact], v: EvidenceView, c: RoleContext) -> Artifact:
            return gate(_last(i, K.REMEDIATION_PROPOSAL), c)

        def executor(i: Sequence[Artifact], v: EvidenceView, c: RoleContext) -> Artifact:
            return execute(_last(i, K.EXECUTION_PLAN), _last(i, K.REMEDIATION_PROPOSAL), c)

        def verifier(i: Sequence[Artifact], v: EvidenceView, c: RoleContext) -> Artifact:
            return verify(_last(i, K.EXECUTION_RESULT), _last(i, K.REMEDIATION_PROPOSAL), v, c)

        def memory(i: Sequence[Artifact], v: EvidenceView, c: RoleContext) -> Artifact:
            return remember(_last(i, K.ANOMALY_FINDING), _last(i, K.ROOT_CAUSE_HYPOTHESIS),
                            _last(i, K.EXECUTION_PLAN), _last(i, K.EXECUTION_RESULT),
                            _last(i, K.VERIFICATION_RESULT), c)

        return [_Step("observer", self, observer), _Step("analyzer", self, analyzer),
                _Step("hypotheses", self, hypotheses), _Step("planner", self, planner),
                _Step("policy_gate", self, policy), _Step("executor", self, executor, True),
                _Step("verifier", self, verifier, verifies=True), _Step("memory", self, memory)]
