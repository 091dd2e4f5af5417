"""The controller: wires settings, run store, journal, hot state, ingest, detection, workflow
engine, notifications and the leader lease together, and starts and stops them in order."""

from __future__ import annotations

import functools
import gc
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from sreagent.controller.builtin_chain import BuiltinChain
from sreagent.controller.hotstate import HotState
from sreagent.controller.ingest import Ingest
from sreagent.controller.journal import (
    GroupCommitJournal,
    PendingBatch,
    compact,
    finish_interrupted_compactions,
)
from sreagent.controller.leader import LeaderLease
from sreagent.controller.memprofile import MemoryProfile, start_memory_profile
from sreagent.controller.notify import Notifier
from sreagent.controller.settings import Settings, WorkflowSettings
from sreagent.controller.store import RunStore
from sreagent.controller.workflow import Chain, EngineHooks, WorkflowEngine, fault_point
from sreagent.evidence import Journal, remove_stale_temporaries
from sreagent.telemetry.arrow import BatchFrame

log = logging.getLogger(__name__)


def tune_gc_for_serving() -> None:
    """Make the cyclic garbage collector's pauses rare and short in a serving controller.

    Its full collections walked every object the imports created (pyarrow, pydantic,
    SQLAlchemy, FastAPI: a few hundred thousand), holding the GIL, and showed up as ack p99
    spikes of 150-300 ms at 200 collectors (docs/benchmarks.md, Session 5). ``gc.freeze``
    moves everything alive now out of the collector's sight, and a larger first generation
    makes collections rarer; request-scoped cycles still die young and are collected. Called by
    ``sreagent serve`` once the app is built (not in tests, which run many apps in one process).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


class Controller:
    """One controller process's state. ``start()`` before serving, ``stop()`` after."""

    def __init__(
        self,
        settings: Settings,
        *,
        chain: Chain | None = None,
        clock: Callable[[], int] = time.time_ns,
    ):
        self.settings = settings
        self.clock = clock
        self.started_at = time.time()
        self.node_id = settings.leader.node_id or f"{socket.gethostname()}-{os.getpid()}"
        self.url = settings.leader.advertise_url or f"http://{settings.host}:{settings.port}"
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = RunStore(settings.effective_database_url, clock=clock)
        self.journal = Journal(settings.journal_root)
        self.journal_lock = threading.Lock()
        hs = settings.hot_state
        self.hot = HotState(
            max_hosts=hs.max_hosts,
            max_series_per_host=hs.max_series_per_host,
            samples_per_series=hs.samples_per_series,
            events_per_host=hs.events_per_host,
        )
        self.notifier = Notifier(settings.notifications)
        self.leader = LeaderLease(
            self.store,
            node_id=self.node_id,
            url=self.url,
            ttl_s=settings.leader.ttl_s,
            enabled=settings.leader.enabled,
            on_change=self._leadership_changed,
        )
        self.flush_seconds: list[float] = []
        self._flush_observer: Callable[[int, float], None] | None = None
        writer_id = f"{self.node_id}-{secrets.token_hex(3)}".replace("/", "_")
        self.writer_id = writer_id
        self.ingest = Ingest(
            store=self.store,
            journal=self.journal,
            hot=self.hot,
            clock=clock,
            make_group_commit=lambda on_durable: GroupCommitJournal(
                settings.journal_root,
                writer_id=writer_id,
                on_durable=self._durable(on_durable),
                max_pending=settings.journal.max_pending_batches,
                buffer_rows=settings.journal.buffer_rows,
                flush_interval_s=settings.journal.flush_interval_s,
                on_flush=self._on_flush,
                known=self.store.receipt_digests,
            ),
            on_accepted=self._detect,
        )
        wf = settings.workflow
        self.engine = WorkflowEngine(
            store=self.store,
            chain=chain or make_chain(wf),
            journal=self.journal,
            runs_root=settings.runs_root,
            config={
                "rules": [r.model_dump() for r in wf.rules],
                "require_approval": wf.require_approval,
                "dry_run": wf.dry_run,
                **({"chain_config": wf.effective_chain_config.redacted()}
                   if wf.chain == "roles" else {}),
            },
            max_concurrent=wf.max_concurrent_runs,
            require_approval=wf.require_approval,
            hooks=EngineHooks(notify=self.notifier.notify, on_finished=self._run_finished),
            journal_lock=self.journal_lock,
            is_leader=lambda: self.is_leader,
            sync_journal=lambda: self.ingest.group_commit.flush_parquet(),
        )
        self._open_fingerprints: set[str] = set()
        self._leader_ready = False
        self._stop = threading.Event()
        self._compactor: threading.Thread | None = None
        self._memory_profile: MemoryProfile | None = None
        self.ready = False

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.store.migrate()
        self.settings.journal_root.mkdir(parents=True, exist_ok=True)
        self.notifier.start()
        # The first lease tick runs here; becoming leader recovers the journal (below) before
        # this controller accepts a single batch.
        self.leader.start()
        if not self.settings.leader.enabled:
            self._leadership_changed(True)
        self._rebuild_hot_state()
        self.engine.start()
        self._compactor = threading.Thread(
            target=self._compact_loop, name="journal-compactor", daemon=True
        )
        self._compactor.start()
        self._memory_profile = start_memory_profile(self.settings.debug)  # off by default
        self.ready = True

    @property
    def is_leader(self) -> bool:
        """Leader AND done taking over (journal recovered): only then ingest and run."""
        return self._leader_ready and self.leader.is_leader

    def stop(self) -> None:
        self.ready = False
        self._stop.set()
        self.ingest.group_commit.close()
        self.engine.stop()
        self.leader.stop()
        self.notifier.stop()
        if self._compactor is not None:
            self._compactor.join(timeout=10)
        if self._memory_profile is not None:
            self._memory_profile.stop()
        self.store.close()

    def _leadership_changed(self, leader: bool) -> None:
        if not leader:
            self._leader_ready = False
            return
        # A new leader first finishes what the previous writer left in the shared journal
        # (its write-ahead log, temporaries, an interrupted compaction), makes sure every
        # journalled batch has a receipt, then takes over its runs. Only then does it ingest.
        root = self.settings.journal_root
        removed = remove_stale_temporaries(root)
        finished = finish_interrupted_compactions(root)
        recovered = self.ingest.recover(self.writer_id)
        if removed or finished or recovered:
            log.warning(
                "journal recovery: %d temporaries removed, %d compactions finished, "
                "%d batches replayed from the write-ahead log",
                len(removed),
                finished,
                recovered,
            )
        self._open_fingerprints = self.store.open_fingerprints()
        self._leader_ready = True
        self.engine.recover()

    def _rebuild_hot_state(self) -> None:
        window = self.settings.hot_state.rebuild_window_s
        if window <= 0:
            return
        since = self.clock() - int(window * 1e9)
        batches = self.journal.read("batches")
        if batches.num_rows == 0:
            return
        import pyarrow.compute as pc

        recent = batches.filter(pc.greater_equal(batches.column("sent_at_ns"), since))
        if recent.num_rows == 0:
            return
        samples = self.journal.read("samples", hosts=sorted(set(recent.column("host").to_pylist())))
        samples = samples.filter(pc.greater_equal(samples.column("ts_ns"), since))
        from sreagent.telemetry.arrow import BatchHeader

        for host in sorted(set(samples.column("host").to_pylist())):
            rows = samples.filter(pc.equal(samples.column("host"), host))
            rows = rows.sort_by([("ts_ns", "ascending")]).drop_columns(["batch_id", "host"])
            header = BatchHeader(
                schema_version="sreagent.batch/v1",
                collector_id="journal",
                host=host,
                producer_epoch="rebuild",
                seq=1,
                sent_at_ns=int(pc.max(rows.column("ts_ns")).as_py()),
            )
            empty = self.journal.read("events").schema.empty_table()
            self.hot.append(
                BatchFrame(
                    header=header,
                    samples=rows,
                    processes=_empty_processes(),
                    events=empty.drop_columns(["batch_id", "host"]),
                )
            )
        log.info("hot state rebuilt from the journal: %s", self.hot.stats()["series"])

    def _compact_loop(self) -> None:
        interval = self.settings.journal.compact_interval_s
        while not self._stop.wait(interval):
            if not self.is_leader:
                continue
            try:
                with self.journal_lock:
                    # On the Parquet flush thread: never beside a flush, no arena of its own
                    # (docs/controller.md, Memory).
                    self.ingest.group_commit.run_in_flush_thread(functools.partial(
                        compact,
                        self.settings.journal_root,
                        min_files=self.settings.journal.compact_min_files,
                        max_rows=self.settings.journal.compact_max_rows,
                        writer_id=self.node_id.replace("/", "_"),
                    )).result()
            except Exception:
                if self._stop.is_set():  # cancelled by the journal closing
                    return
                log.exception("journal compaction failed (it will be retried)")

    # --- ingest hooks --------------------------------------------------------------------------

    def _durable(
        self, inner: Callable[[list[PendingBatch]], None]
    ) -> Callable[[list[PendingBatch]], None]:
        def wrapped(group: list[PendingBatch]) -> None:
            fault_point("journal:after_flush")
            inner(group)

        return wrapped

    def _on_flush(self, batches: int, seconds: float) -> None:
        if self._flush_observer is not None:
            self._flush_observer(batches, seconds)

    def _detect(self, frames: list[BatchFrame]) -> None:
        """Apply the threshold rules to the hosts of a flushed group (flusher thread)."""
        hosts = {f.header.host: f.header.sent_at_ns for f in frames}
        for host, sent_at in hosts.items():
            for rule in self.settings.workflow.rules:
                values = self.hot.last_values(host, rule.metric, rule.entity, rule.for_samples)
                if len(values) == 0:
                    continue
                fingerprint = f"{host}:{rule.name}"
                firing = len(values) == rule.for_samples and bool((values > rule.above).all())
                if firing and fingerprint not in self._open_fingerprints:
                    self._open_from_detector(
                        host,
                        rule.name,
                        rule.severity,
                        fingerprint,
                        sent_at,
                        {"metric": rule.metric, "entity": rule.entity, "above": rule.above},
                    )
                elif (
                    not firing
                    and fingerprint in self._open_fingerprints
                    and float(values[-1]) <= rule.above
                ):
                    self._close(fingerprint)

    def _open_from_detector(
        self,
        host: str,
        rule: str,
        severity: str,
        fingerprint: str,
        at_ns: int,
        labels: dict[str, Any],
    ) -> None:
        incident_id = f"inc-{time.strftime('%Y%m%d', time.gmtime())}-{secrets.token_hex(4)}"
        incident, opened = self.store.open_incident(
            incident_id=incident_id,
            fingerprint=fingerprint,
            host=host,
            source="detector",
            title=f"{rule} on {host}",
            severity=severity,
            labels=labels,
        )
        self._open_fingerprints.add(fingerprint)
        if opened:
            self._start_run(incident, trigger=rule, end_ns=at_ns)

    def _start_run(self, incident: dict[str, Any], *, trigger: str, end_ns: int) -> str:
        window_ns = int(self.settings.workflow.window_s * 1e9)
        run_id = self.engine.submit(
            incident_id=incident["incident_id"],
            host=incident["host"],
            trigger=trigger,
            window=(max(0, end_ns - window_ns), end_ns),
            context={"trigger": trigger},
        )
        self.store.attach_run(incident["incident_id"], run_id)
        self.notifier.notify(
            "incident_opened",
            {
                "incident_id": incident["incident_id"],
                "host": incident["host"],
                "title": incident["title"],
                "severity": incident["severity"],
                "run_id": run_id,
            },
        )
        return run_id

    def _close(self, fingerprint: str) -> None:
        closed = self.store.close_incident(fingerprint)
        self._open_fingerprints.discard(fingerprint)
        if closed:
            self.notifier.notify(
                "incident_closed",
                {
                    "incident_id": closed["incident_id"],
                    "host": closed["host"],
                    "title": closed["title"],
                },
            )

    def _run_finished(self, run: dict[str, Any]) -> None:
        if run["state"] == "completed":
            executed = [
                a
                for a in self.store.list_activities(run["run_id"])
                if a["kind"] == "execute_action"
            ]
            if executed:
                self.notifier.notify(
                    "action_executed",
                    {
                        "run_id": run["run_id"],
                        "incident_id": run["incident_id"],
                        "host": run["host"],
                        "actions": len(executed),
                        "dry_run": self.settings.workflow.dry_run,
                    },
                )

    # --- alertmanager --------------------------------------------------------------------------

    def receive_alerts(self, payload: dict[str, Any], *, actor: str) -> dict[str, Any]:
        """Open/enrich incidents from firing alerts, close them on resolved ones."""
        opened, enriched, closed = [], [], []
        latest: dict[str, dict[str, Any]] = {}
        for alert in payload.get("alerts", []):
            labels = dict(alert.get("labels") or {})
            name = labels.get("alertname", "alert")
            host = (
                labels.get("host") or labels.get("node") or labels.get("instance") or "unknown"
            ).split(":")[0]
            fingerprint = f"alertmanager:{alert.get('fingerprint') or name + ':' + host}"
            # One delivery may repeat an alert; its last state in the delivery counts.
            latest[fingerprint] = {**alert, "_name": name, "_host": host, "_labels": labels}
        for fingerprint, alert in latest.items():
            name, host, labels = alert["_name"], alert["_host"], alert["_labels"]
            if alert.get("status") == "resolved":
                if self.store.close_incident(fingerprint):
                    closed.append(fingerprint)
                    self.notifier.notify(
                        "incident_closed", {"fingerprint": fingerprint, "host": host}
                    )
                continue
            severity = labels.get("severity", "warning")
            if severity not in ("warning", "error", "critical"):
                severity = "warning"
            summary = (alert.get("annotations") or {}).get("summary", "")
            incident, is_new = self.store.open_incident(
                incident_id=f"inc-am-{secrets.token_hex(6)}",
                fingerprint=fingerprint,
                host=host,
                source="alertmanager",
                title=summary or f"{name} on {host}",
                severity=severity,
                labels=labels,
            )
            if is_new:
                opened.append(incident["incident_id"])
                if self.is_leader:
                    self._start_run(incident, trigger=f"alertmanager:{name}", end_ns=self.clock())
            else:
                enriched.append(incident["incident_id"])
        self.store.audit(
            actor,
            "alertmanager_webhook",
            payload.get("groupKey", ""),
            {"opened": opened, "enriched": enriched, "closed": closed},
        )
        return {"opened": opened, "enriched": enriched, "closed": closed}

    # --- approvals -----------------------------------------------------------------------------

    def resolve(self, run_id: str, *, approve: bool, actor: str, reason: str) -> dict[str, Any]:
        step = self.store.resolve_approval(run_id, approve=approve, actor=actor, reason=reason)
        self.engine.enqueue(run_id)
        return {"run_id": run_id, "step": step, "decision": "approved" if approve else "rejected"}


def make_chain(workflow: WorkflowSettings) -> Chain:
    """The chain ``workflow.chain`` names, configured from the workflow settings."""
    if workflow.chain == "builtin":
        return BuiltinChain()
    from sreagent.chain import DEFAULT_RUNBOOKS, RoleChain, load_runbooks

    folder = workflow.runbooks_dir
    if folder is None and DEFAULT_RUNBOOKS.is_dir():  # absent in a wheel without docs/
        folder = DEFAULT_RUNBOOKS
    return RoleChain(config=workflow.effective_chain_config,
                     runbooks=load_runbooks(folder) if folder is not None else None,
                     verify_after_seconds=workflow.verify_after_s)


def _empty_processes() -> Any:
    from sreagent.telemetry.arrow import PROCESSES_SCHEMA

    return PROCESSES_SCHEMA.empty_table()
