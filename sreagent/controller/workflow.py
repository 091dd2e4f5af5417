"""The workflow engine: durable runs of a role chain, with approval gates and crash recovery.

A run moves through ``pending -> running -> (awaiting_approval -> pending -> running)* ->
completed | failed | cancelled``; every transition and step is a row in ``run_events``.

The engine calls the role chain through ONE interface, :class:`Chain`: an ordered list of
:class:`Step` objects, each a pure function ``(prior artifacts, evidence view, context) ->
Artifact``. Recovery rests on two rules:

* a step's artifact and the run's step counter are stored in one transaction
  (:meth:`RunStore.record_step`), so after a crash the run resumes at the first step without a
  stored artifact, and a recomputed step (same inputs, same content-hash id) is never stored
  twice;
* effects go through :meth:`StepContext.activity` with an idempotency key claimed in the store
  BEFORE the effect runs. A completed activity's recorded result is fed back instead of running
  it again; one found ``started`` (the controller died mid-effect) is never re-run blindly: the
  step gets ``interrupted`` and reports it, because running an action twice is worse than
  asking an operator.

A step may need telemetry from after the run's window (the verifier, once an action ran:
``evidence_until(inputs)``). The engine then leaves the run ``running`` and comes back when
that telemetry can have arrived (``evidence_grace_s`` after the time asked for; after a restart
:meth:`WorkflowEngine.recover` re-queues it), runs the step over the longer window, and writes
that window into the run's evidence package.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from sreagent.artifacts import Artifact
from sreagent.controller.store import RunStore
from sreagent.evidence import ActivityRecord, Journal, write_package
from sreagent.evidence.package import MANIFEST

log = logging.getLogger(__name__)

CRASH_ENV = "SREAGENT_CRASH_AT"
"""Test hook: the named fault point kills this process with SIGKILL (docs/controller.md)."""


def fault_point(name: str) -> None:
    """Die here, as kill -9 would, when ``SREAGENT_CRASH_AT`` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        log.error("fault injection: SIGKILL at %s", name)
        os.kill(os.getpid(), signal.SIGKILL)


class EvidenceView(Protocol):
    """What a step may read of telemetry: one host's rows inside the run's window."""

    host: str
    start_ns: int
    end_ns: int

    def table(self, name: str) -> pa.Table:
        """``samples``, ``events``, ``processes`` or ``batches`` rows of the window."""
        ...


@dataclass
class StepContext:
    """Everything a step gets besides artifacts and evidence. No wall clock in here."""

    run_id: str
    incident_id: str
    host: str
    window: tuple[int, int]
    config: dict[str, Any]
    approval: str | None
    """``approved``/``rejected`` when this step sat behind an approval gate, else None."""
    activity: Callable[[str, str, dict[str, Any], Callable[[], dict[str, Any]]], dict[str, Any]]
    """``activity(kind, key, request, effect)``: run an effect at most once per key."""

    @property
    def logical_time(self) -> int:
        return self.window[1]


class Step(Protocol):
    name: str

    def needs_approval(self, inputs: Sequence[Artifact], ctx: StepContext) -> bool:
        """Whether an operator must approve before :meth:`run` (checked before running)."""
        ...

    def run(
        self, inputs: Sequence[Artifact], evidence: EvidenceView, ctx: StepContext
    ) -> Artifact: ...


INTERRUPTED = {
    "status": "interrupted",
    "message": "the controller stopped while this effect was running; it was "
    "not run again (check the target before retrying by hand)",
}
"""What :meth:`StepContext.activity` answers for an effect found ``started`` (never re-run)."""


class Chain(Protocol):
    """The role chain as the engine sees it (the roles issue plugs in here).

    A chain that can be replayed also has ``package_run(run, activities, interrupted) ->
    (run section, activity records)`` (sreagent/chain/_engine.py ``RoleChain``): the engine
    writes what it answers into the run's evidence package (``config.json["run"]`` and
    ``activities.parquet``) instead of the raw activity-store rows.
    """

    @property
    def name(self) -> str:
        """Recorded on every run and in its evidence package's config."""
        ...

    @property
    def steps(self) -> Sequence[Step]:
        """In order; step N's artifact is stored at position N."""
        ...


class JournalEvidence:
    """An :class:`EvidenceView` over the durable journal (so a resumed run sees the same
    rows it saw before the crash, unlike hot state)."""

    def __init__(self, journal: Journal, host: str, window: tuple[int, int], lock: threading.Lock):
        self._journal = journal
        self.host = host
        self.start_ns, self.end_ns = window
        self._lock = lock
        self._cache: dict[str, pa.Table] = {}

    def table(self, name: str) -> pa.Table:
        if name not in self._cache:
            with self._lock:  # host and window pushed down to the journal's row groups
                rows = self._journal.read(name, hosts=[self.host],
                                          time_range=(self.start_ns, self.end_ns))
            column = "sent_at_ns" if name == "batches" else "ts_ns"
            if rows.num_rows:
                rows = rows.sort_by([(column, "ascending")])
            self._cache[name] = rows
        return self._cache[name]

    def batch_ids(self) -> list[str]:
        ids: set[str] = set()
        for name in ("samples", "events", "processes"):
            ids.update(self.table(name).column("batch_id").to_pylist())
        return sorted(ids)


def _evidence_until(step: Step, inputs: Sequence[Artifact]) -> int | None:
    """The end of the later window a step needs (``Step.evidence_until``, optional)."""
    ask = getattr(step, "evidence_until", None)
    return ask(inputs) if ask is not None else None


@dataclass
class EngineHooks:
    notify: Callable[[str, dict[str, Any]], None] = lambda event, payload: None
    on_finished: Callable[[dict[str, Any]], None] = lambda run: None


@dataclass
class WorkflowEngine:
    """Runs chains for runs stored in the store, at most ``max_concurrent`` at once."""

    store: RunStore
    chain: Chain
    journal: Journal
    runs_root: Path
    config: dict[str, Any]
    max_concurrent: int = 2
    require_approval: bool = True
    hooks: EngineHooks = field(default_factory=EngineHooks)
    journal_lock: threading.Lock = field(default_factory=threading.Lock)
    is_leader: Callable[[], bool] = lambda: True
    sync_journal: Callable[[], object] = lambda: None
    """Makes every acknowledged batch visible as Parquet before a run reads evidence."""
    evidence_grace_s: float = 3.0
    """How long after the end of a later window a step asked for the engine waits before
    reading it (collector interval plus delivery)."""

    def __post_init__(self) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._queued: set[str] = set()
        self._queued_lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self.active = 0
        self._active_lock = threading.Lock()
        self.steps_run = 0
        self._driving: set[str] = set()
        self._redrive: set[str] = set()
        self._driving_lock = threading.Lock()

    # --- control -----------------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.max_concurrent):
            worker = threading.Thread(target=self._work, name=f"workflow-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(timeout=30)
        self._workers.clear()

    def recover(self) -> list[str]:
        """Queue every run a previous process left pending or running; return their ids."""
        runs = self.store.list_runs(state="pending", limit=10_000)
        runs += self.store.list_runs(state="running", limit=10_000)
        for run in runs:
            self.enqueue(run["run_id"])
        return [r["run_id"] for r in runs]

    def submit(
        self,
        *,
        incident_id: str,
        host: str,
        trigger: str,
        window: tuple[int, int],
        context: dict[str, Any] | None = None,
    ) -> str:
        run_id = f"run-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"
        self.store.create_run(
            run_id=run_id,
            incident_id=incident_id,
            host=host,
            trigger=trigger,
            chain=self.chain.name,
            window=window,
            context=context,
        )
        self.enqueue(run_id)
        return run_id

    def enqueue(self, run_id: str) -> None:
        with self._queued_lock:
            if run_id in self._queued:
                return
            self._queued.add(run_id)
        self._queue.put(run_id)

    def cancel(self, run_id: str, *, actor: str) -> bool:
        done = self.store.set_run_state(
            run_id, "cancelled", expect=["pending", "awaiting_approval"], payload={"actor": actor}
        )
        if done:
            self.store.audit(actor, "run_cancelled", run_id)
        return done

    # --- workers -----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            run_id = self._queue.get()
            if run_id is None:
                return
            with self._queued_lock:
                self._queued.discard(run_id)
            while not self.is_leader():
                time.sleep(0.5)
            with self._active_lock:
                self.active += 1
            try:
                self.drive(run_id)
            except Exception:
                log.exception("run %s crashed the engine worker", run_id)
            finally:
                with self._active_lock:
                    self.active -= 1

    def drive(self, run_id: str) -> str:
        """Advance one run as far as it can go; return its state afterwards."""
        with self._driving_lock:
            if run_id in self._driving:  # another worker has it: let it look again after
                self._redrive.add(run_id)
                return "running"
            self._driving.add(run_id)
        try:
            return self._drive(run_id)
        finally:
            with self._driving_lock:
                self._driving.discard(run_id)
                again = run_id in self._redrive
                self._redrive.discard(run_id)
            if again:
                self.enqueue(run_id)

    def _drive(self, run_id: str) -> str:
        run = self.store.get_run(run_id)
        if run["state"] not in ("pending", "running"):
            return str(run["state"])
        resumed = run["state"] == "running"
        if not self.store.set_run_state(
            run_id,
            "running",
            expect=["pending", "running"],
            payload={"resumed_at_step": run["current_step"]} if resumed else {},
        ):
            return str(self.store.get_run(run_id)["state"])
        try:
            return self._advance(run)
        except Exception as err:
            log.exception("run %s failed", run_id)
            self.store.set_run_state(run_id, "failed", error=f"{type(err).__name__}: {err}")
            self.hooks.on_finished(self.store.get_run(run_id))
            return "failed"

    def _advance(self, run: dict[str, Any]) -> str:
        run_id = run["run_id"]
        window = (int(run["window_start_ns"]), int(run["window_end_ns"]))
        artifacts = self.store.list_artifacts(run_id)
        self.sync_journal()
        evidence = JournalEvidence(self.journal, run["host"], window, self.journal_lock)
        steps = list(self.chain.steps)
        for position in range(len(artifacts), len(steps)):
            step = steps[position]
            approval_row = self.store.get_approval(run_id, position)
            ctx = StepContext(
                run_id=run_id,
                incident_id=run["incident_id"],
                host=run["host"],
                window=window,
                config={**self.config, **(run["context"] or {})},
                approval=approval_row["state"] if approval_row else None,
                activity=lambda kind, key, request, effect: self._activity(
                    run_id, kind, key, request, effect
                ),
            )
            undecided = approval_row is None or approval_row["state"] == "pending"
            if self.require_approval and undecided and step.needs_approval(artifacts, ctx):
                self.store.request_approval(run_id, position)
                self.store.set_run_state(
                    run_id, "awaiting_approval", payload={"step": position, "step_name": step.name}
                )
                self.hooks.notify(
                    "approval_needed",
                    {
                        "run_id": run_id,
                        "incident_id": run["incident_id"],
                        "host": run["host"],
                        "step": step.name,
                    },
                )
                return "awaiting_approval"
            step_evidence = evidence
            until = _evidence_until(step, artifacts)
            if until is not None and until > window[1]:
                wait_s = (until - time.time_ns()) / 1e9 + self.evidence_grace_s
                if wait_s > 0:
                    self._come_back(run_id, wait_s, step.name, until)
                    return "running"
                self.sync_journal()
                step_evidence = JournalEvidence(self.journal, run["host"], (window[0], until),
                                                self.journal_lock)
            artifact = step.run(artifacts, step_evidence, ctx)
            fault_point(f"step{position}:before_record")
            self.store.record_step(run_id, position, artifact, host=run["host"])
            self.steps_run += 1
            artifacts.append(artifact)
        until = max((u for u in (_evidence_until(st, artifacts[:i])
                                 for i, st in enumerate(steps)) if u is not None), default=None)
        if until is not None and until > window[1]:
            evidence = JournalEvidence(self.journal, run["host"], (window[0], until),
                                       self.journal_lock)
        self._write_package(run, artifacts, evidence)
        self.store.set_run_state(run_id, "completed")
        finished = self.store.get_run(run_id)
        self.hooks.on_finished(finished)
        return "completed"

    def _come_back(self, run_id: str, wait_s: float, step: str, until_ns: int) -> None:
        """Re-queue a run once the telemetry its next step needs can have arrived."""
        if not any(e["type"] == "waiting_for_evidence" for e in self.store.list_events(run_id)):
            self.store.add_event(run_id, "waiting_for_evidence",
                                 {"step": step, "until_ns": until_ns, "wait_s": round(wait_s, 3)})
        timer = threading.Timer(wait_s, self.enqueue, args=(run_id,))
        timer.daemon = True
        timer.start()

    def _activity(
        self,
        run_id: str,
        kind: str,
        key: str,
        request: dict[str, Any],
        effect: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        existing = self.store.begin_activity(key, run_id=run_id, kind=kind, request=request)
        if existing is not None:
            if existing["run_id"] != run_id:
                # An earlier run (of the same incident) holds this key: this run consumes its
                # row, so its package must carry it too (the store lists rows by claiming run).
                self.store.add_event(run_id, "activity_reused", {
                    k: existing[k] for k in ("key", "kind", "request", "status", "result")})
            if existing["status"] == "completed":
                return {**existing["result"], "replayed_from_record": True}
            return dict(INTERRUPTED)
        fault_point("activity:after_claim")
        result = effect()
        self.store.complete_activity(key, result)
        self.store.add_event(run_id, "activity_completed", {"kind": kind, "key": key})
        return result

    def _write_package(
        self, run: dict[str, Any], artifacts: list[Artifact], evidence: JournalEvidence
    ) -> None:
        path = self.runs_root / run["run_id"]
        if (path / MANIFEST).exists():  # written before a crash; packages are written once
            return
        tables = {name: evidence.table(name) for name in ("samples", "processes", "events")}
        wanted = set(evidence.batch_ids())
        batches = evidence.table("batches")
        if batches.num_rows:
            batches = batches.filter(
                pc.is_in(
                    batches.column("batch_id"), value_set=pa.array(sorted(wanted), pa.string())
                )
            )
        tables["batches"] = batches
        rows = self.store.list_activities(run["run_id"])
        claimed = {r["key"] for r in rows}
        for event in self.store.list_events(run["run_id"]):
            if event["type"] == "activity_reused" and event["payload"]["key"] not in claimed:
                claimed.add(event["payload"]["key"])
                rows.append(event["payload"])
        config: dict[str, Any] = {"chain": self.chain.name, **self.config}
        package_run = getattr(self.chain, "package_run", None)
        if package_run is not None:
            # What the chain consumed, as sreagent.replay reads it: the package replays.
            verify_window = None
            if evidence.end_ns > int(run["window_end_ns"]):
                verify_window = (int(run["window_start_ns"]), evidence.end_ns)
            config["run"], activities = package_run(run, rows, INTERRUPTED,
                                                    verify_window=verify_window)
        else:
            activities = [
                ActivityRecord(
                    activity_id=a["key"],
                    kind=a["kind"],
                    key=a["key"],
                    logical_time=int(run["window_end_ns"]),
                    status=a["status"],
                    request=a["request"],
                    result=a["result"],
                )
                for a in rows
            ]
        write_package(
            path,
            run_id=run["run_id"],
            source="live",
            config=config,
            tables=tables,
            artifacts=artifacts,
            activities=activities,
            window=(int(run["window_start_ns"]), evidence.end_ns),
        )
        self.store.add_event(run["run_id"], "evidence_package_written", {"path": str(path)})
