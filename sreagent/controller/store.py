"""The run store: runs, their events and artifacts, idempotency keys, approvals, the audit log,
ingest receipts, incidents and the leader lease, in SQLite (WAL, the default) or PostgreSQL.

Every method is one short transaction. Methods are synchronous; the async API calls them
through a worker thread. Writes that must happen together (an artifact and the run's step
counter) share one transaction, which is what lets a crashed run resume without duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, bindparam, create_engine, event, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sreagent.artifacts import Artifact
from sreagent.controller._models import (
    ApprovalRow,
    ArtifactRow,
    AuditRow,
    IdempotencyRow,
    IncidentRow,
    LeaseRow,
    ReceiptRow,
    RunEventRow,
    RunRow,
)
from sreagent.controller.errors import InvalidState, NotFound

MIGRATIONS = Path(__file__).parent / "migrations"
RUN_STATES = ("pending", "running", "awaiting_approval", "completed", "failed", "cancelled")
ACTIVE_STATES = ("pending", "running")
_MIGRATION_LOCK = 0x5E7A6E47  # pg advisory lock id serialising concurrent migrations

Clock = Callable[[], int]


def _row_dict(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


_RECEIPT_DIGESTS = select(ReceiptRow.batch_id, ReceiptRow.digest).where(
    ReceiptRow.batch_id.in_(bindparam("ids", expanding=True)))


class RunStore:
    """The controller's relational state. ``url`` is a SQLAlchemy URL."""

    def __init__(self, url: str, *, clock: Clock = time.time_ns):
        self.url = url
        self.clock = clock
        self.dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
        if self.dialect == "sqlite":
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # Take the write lock at BEGIN: two deferred transactions that both try to upgrade
            # to writing would otherwise fail with "database is locked" instead of waiting.
            event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            # Reads use their own engine with plain deferred transactions: in WAL mode they
            # never wait for the writer.
            self.read_engine: Engine = create_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False}
            )
            event.listen(self.read_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)
            self.read_engine = self.engine
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._insert_receipt = self._insert(ReceiptRow.__table__).on_conflict_do_nothing()
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    # --- lifecycle ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest migration (safe to run from two processes)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._read_sessions() as session, session.begin():
            yield session

    def _insert(self, model: Any) -> Any:
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)(model)

    # --- ingest receipts ---------------------------------------------------------------------

    def receipt_digest(self, batch_id: str) -> str | None:
        with self._reading() as s:
            return s.scalar(select(ReceiptRow.digest).where(ReceiptRow.batch_id == batch_id))

    def receipt_digests(self, batch_ids: Sequence[str]) -> dict[str, str]:
        """``{batch_id: digest}`` of those ids that have a receipt (one query)."""
        if not batch_ids:
            return {}
        # Core on a plain connection, not an ORM session: this runs once per WAL group commit
        # on the ingest path, where the session's bookkeeping cost more than the query.
        with self.read_engine.connect() as c:
            rows = c.execute(_RECEIPT_DIGESTS, {"ids": list(batch_ids)})
            return {str(batch_id): str(digest) for batch_id, digest in rows}

    def insert_receipts(self, rows: Sequence[dict[str, Any]]) -> None:
        """Record accepted batches; a receipt that already exists is left as it is."""
        if not rows:
            return
        with self.engine.begin() as c:  # Core executemany (see receipt_digests)
            c.execute(self._insert_receipt, list(rows))

    def known_batch_ids(self, batch_ids: Iterable[str]) -> set[str]:
        ids = list(batch_ids)
        found: set[str] = set()
        with self._reading() as s:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                found.update(
                    s.scalars(select(ReceiptRow.batch_id).where(ReceiptRow.batch_id.in_(chunk)))
                )
        return found

    def receipt_stats(self) -> dict[str, int]:
        with self._reading() as s:
            count, samples = s.execute(
                select(func.count(), func.coalesce(func.sum(ReceiptRow.samples), 0))
            ).one()
        return {"receipts": int(count), "samples": int(samples)}

    # --- audit log ---------------------------------------------------------------------------

    def audit(
        self, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        with self._session() as s:
            s.add(
                AuditRow(
                    at_ns=self.clock(),
                    actor=actor,
                    action=action,
                    target=target[:512],
                    detail=detail or {},
                )
            )

    def list_audit(self, *, limit: int = 100, action: str | None = None) -> list[dict[str, Any]]:
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if action:
            query = query.where(AuditRow.action == action)
        with self._reading() as s:
            return [_row_dict(r) for r in s.scalars(query)]

    # --- runs --------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        run_id: str,
        incident_id: str,
        host: str,
        trigger: str,
        chain: str,
        window: tuple[int, int],
        context: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        now = self.clock()
        row = RunRow(
            run_id=run_id,
            incident_id=incident_id,
            host=host,
            trigger=trigger,
            chain=chain,
            state="pending",
            current_step=0,
            window_start_ns=window[0],
            window_end_ns=window[1],
            created_at_ns=now,
            updated_at_ns=now,
            error="",
            context=context or {},
        )
        with self._session() as s:
            s.add(row)
            s.add(
                RunEventRow(
                    run_id=run_id,
                    at_ns=now,
                    type="run_created",
                    payload={"trigger": trigger, "incident_id": incident_id},
                )
            )
        return _row_dict(row)

    def get_run(self, run_id: str) -> dict[str, Any]:
        with self._reading() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise NotFound(f"no run {run_id!r}", field="run_id")
            return _row_dict(row)

    def list_runs(
        self, *, state: str | None = None, host: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        query = select(RunRow).order_by(RunRow.updated_at_ns.desc(), RunRow.run_id.desc())
        if state:
            query = query.where(RunRow.state == state)
        if host:
            query = query.where(RunRow.host == host)
        with self._reading() as s:
            return [_row_dict(r) for r in s.scalars(query.limit(limit))]

    def run_state_counts(self) -> dict[str, int]:
        with self._reading() as s:
            rows = s.execute(select(RunRow.state, func.count()).group_by(RunRow.state)).all()
        counts = dict.fromkeys(RUN_STATES, 0)
        counts.update({state: int(n) for state, n in rows})
        return counts

    def set_run_state(
        self,
        run_id: str,
        state: str,
        *,
        expect: Sequence[str] | None = None,
        error: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> bool:
        """Move a run to ``state`` (only from ``expect`` states when given); record an event.

        Returns False, changing nothing, when the run was not in an expected state.
        """
        if state not in RUN_STATES:
            raise ValueError(f"unknown run state {state!r}")
        now = self.clock()
        values: dict[str, Any] = {"state": state, "updated_at_ns": now}
        if error is not None:
            values["error"] = error
        query = update(RunRow).where(RunRow.run_id == run_id).values(**values)
        if expect is not None:
            query = query.where(RunRow.state.in_(list(expect)))
        with self._session() as s:
            if s.execute(query).rowcount == 0:  # type: ignore[attr-defined]
                return False
            s.add(
                RunEventRow(
                    run_id=run_id,
                    at_ns=now,
                    type=f"run_{state}",
                    payload={**(payload or {}), **({"error": error} if error else {})},
                )
            )
        return True

    def add_event(self, run_id: str, type_: str, payload: dict[str, Any] | None = None) -> None:
        with self._session() as s:
            s.add(RunEventRow(run_id=run_id, at_ns=self.clock(), type=type_, payload=payload or {}))

    def list_events(self, run_id: str) -> list[dict[str, Any]]:
        with self._reading() as s:
            rows = s.scalars(
                select(RunEventRow).where(RunEventRow.run_id == run_id).order_by(RunEventRow.id)
            )
            return [_row_dict(r) for r in rows]

    # --- artifacts ---------------------------------------------------------------------------

    def record_step(self, run_id: str, position: int, artifact: Artifact, host: str) -> bool:
        """Store a step's artifact and advance the run past that step, in one transaction.

        Returns False when the step was already recorded (a resumed run recomputing it): the
        stored artifact stays, nothing is duplicated.
        """
        now = self.clock()
        try:
            with self._session() as s:
                s.add(
                    ArtifactRow(
                        run_id=run_id,
                        position=position,
                        artifact_id=artifact.artifact_id,
                        kind=artifact.kind.value,
                        status=artifact.status.value,
                        logical_time=artifact.logical_time,
                        host=host,
                        created_at_ns=now,
                        body=artifact.model_dump(mode="json"),
                    )
                )
                s.execute(
                    update(RunRow)
                    .where(RunRow.run_id == run_id)
                    .values(current_step=position + 1, updated_at_ns=now)
                )
                s.add(
                    RunEventRow(
                        run_id=run_id,
                        at_ns=now,
                        type="step_completed",
                        payload={
                            "position": position,
                            "kind": artifact.kind.value,
                            "artifact_id": artifact.artifact_id,
                            "status": artifact.status.value,
                        },
                    )
                )
        except IntegrityError:
            return False
        return True

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        with self._reading() as s:
            rows = s.scalars(
                select(ArtifactRow)
                .where(ArtifactRow.run_id == run_id)
                .order_by(ArtifactRow.position)
            )
            return [Artifact.model_validate(r.body) for r in rows]

    def latest_artifacts_by_host(self, kind: str) -> dict[str, Artifact]:
        """The newest artifact of ``kind`` per host (by logical time)."""
        newest = (
            select(ArtifactRow.host, func.max(ArtifactRow.logical_time).label("t"))
            .where(ArtifactRow.kind == kind)
            .group_by(ArtifactRow.host)
            .subquery()
        )
        query = (
            select(ArtifactRow)
            .join(
                newest,
                (ArtifactRow.host == newest.c.host) & (ArtifactRow.logical_time == newest.c.t),
            )
            .where(ArtifactRow.kind == kind)
            .order_by(ArtifactRow.created_at_ns)
        )
        with self._reading() as s:
            return {r.host: Artifact.model_validate(r.body) for r in s.scalars(query)}

    # --- idempotency keys (activities) ---------------------------------------------------------

    def begin_activity(
        self, key: str, *, run_id: str, kind: str, request: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Claim ``key`` before running an effect. Returns None when claimed now (run it), or
        the existing row (``started``: interrupted mid-effect; ``completed``: its result)."""
        try:
            with self._session() as s:
                s.add(
                    IdempotencyRow(
                        key=key,
                        run_id=run_id,
                        kind=kind,
                        status="started",
                        request=request,
                        result={},
                        started_at_ns=self.clock(),
                    )
                )
            return None
        except IntegrityError:
            with self._session() as s:
                row = s.get(IdempotencyRow, key)
                assert row is not None
                return _row_dict(row)

    def complete_activity(self, key: str, result: dict[str, Any]) -> None:
        with self._session() as s:
            s.execute(
                update(IdempotencyRow)
                .where(IdempotencyRow.key == key)
                .values(status="completed", result=result, completed_at_ns=self.clock())
            )

    def list_activities(self, run_id: str) -> list[dict[str, Any]]:
        with self._reading() as s:
            rows = s.scalars(
                select(IdempotencyRow)
                .where(IdempotencyRow.run_id == run_id)
                .order_by(IdempotencyRow.started_at_ns)
            )
            return [_row_dict(r) for r in rows]

    # --- approvals ---------------------------------------------------------------------------

    def request_approval(self, run_id: str, step: int) -> None:
        with self._session() as s:
            if s.get(ApprovalRow, (run_id, step)) is None:
                s.add(
                    ApprovalRow(
                        run_id=run_id,
                        step=step,
                        state="pending",
                        actor="",
                        reason="",
                        requested_at_ns=self.clock(),
                    )
                )

    def get_approval(self, run_id: str, step: int) -> dict[str, Any] | None:
        with self._reading() as s:
            row = s.get(ApprovalRow, (run_id, step))
            return _row_dict(row) if row else None

    def list_approvals(self, run_id: str) -> list[dict[str, Any]]:
        with self._reading() as s:
            rows = s.scalars(
                select(ApprovalRow).where(ApprovalRow.run_id == run_id).order_by(ApprovalRow.step)
            )
            return [_row_dict(r) for r in rows]

    def resolve_approval(self, run_id: str, *, approve: bool, actor: str, reason: str) -> int:
        """Approve or reject the run's pending approval and make the run runnable again.

        Raises :class:`InvalidState` unless the run is awaiting approval.
        """
        now = self.clock()
        decision = "approved" if approve else "rejected"
        with self._session() as s:
            run = s.get(RunRow, run_id, with_for_update=True)
            if run is None:
                raise NotFound(f"no run {run_id!r}", field="run_id")
            if run.state != "awaiting_approval":
                raise InvalidState(f"run {run_id} is {run.state}, not awaiting_approval")
            approval = s.get(ApprovalRow, (run_id, run.current_step), with_for_update=True)
            if approval is None or approval.state != "pending":
                raise InvalidState(f"run {run_id} has no pending approval")
            approval.state, approval.actor, approval.reason = decision, actor, reason
            approval.resolved_at_ns = now
            run.state, run.updated_at_ns = "pending", now
            s.add(
                RunEventRow(
                    run_id=run_id,
                    at_ns=now,
                    type=f"approval_{decision}",
                    payload={"actor": actor, "reason": reason, "step": run.current_step},
                )
            )
            s.add(
                AuditRow(
                    at_ns=now,
                    actor=actor,
                    action=f"run_{decision}",
                    target=run_id,
                    detail={"reason": reason, "step": run.current_step},
                )
            )
            return run.current_step

    # --- incidents ---------------------------------------------------------------------------

    def open_incident(
        self,
        *,
        incident_id: str,
        fingerprint: str,
        host: str,
        source: str,
        title: str,
        severity: str,
        labels: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Open an incident, or enrich the open one with the same fingerprint.

        Returns (incident, opened_now).
        """
        now = self.clock()
        with self._session() as s:
            existing = s.scalars(
                select(IncidentRow)
                .where(IncidentRow.fingerprint == fingerprint, IncidentRow.state == "open")
                .with_for_update()
            ).first()
            if existing is not None:
                existing.alert_count += 1
                existing.updated_at_ns = now
                existing.labels = {**existing.labels, **(labels or {})}
                return _row_dict(existing), False
            row = IncidentRow(
                incident_id=incident_id,
                fingerprint=fingerprint,
                host=host,
                source=source,
                title=title,
                severity=severity,
                state="open",
                opened_at_ns=now,
                updated_at_ns=now,
                closed_at_ns=None,
                run_id="",
                alert_count=1,
                labels=labels or {},
            )
            s.add(row)
        return _row_dict(row), True

    def attach_run(self, incident_id: str, run_id: str) -> None:
        with self._session() as s:
            s.execute(
                update(IncidentRow)
                .where(IncidentRow.incident_id == incident_id)
                .values(run_id=run_id, updated_at_ns=self.clock())
            )

    def close_incident(self, fingerprint: str) -> dict[str, Any] | None:
        now = self.clock()
        with self._session() as s:
            row = s.scalars(
                select(IncidentRow).where(
                    IncidentRow.fingerprint == fingerprint, IncidentRow.state == "open"
                )
            ).first()
            if row is None:
                return None
            row.state, row.closed_at_ns, row.updated_at_ns = "closed", now, now
            return _row_dict(row)

    def open_fingerprints(self) -> set[str]:
        with self._reading() as s:
            return set(
                s.scalars(select(IncidentRow.fingerprint).where(IncidentRow.state == "open"))
            )

    def get_incident(self, incident_id: str) -> dict[str, Any]:
        with self._reading() as s:
            row = s.get(IncidentRow, incident_id)
            if row is None:
                raise NotFound(f"no incident {incident_id!r}", field="incident_id")
            return _row_dict(row)

    def list_incidents(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = select(IncidentRow).order_by(IncidentRow.updated_at_ns.desc()).limit(limit)
        if state:
            query = query.where(IncidentRow.state == state)
        with self._reading() as s:
            return [_row_dict(r) for r in s.scalars(query)]

    # --- leader lease --------------------------------------------------------------------------

    def _db_now_ns(self, s: Session) -> int:
        # PostgreSQL's clock decides lease expiry, so controllers with skewed clocks agree.
        if self.dialect == "postgresql":
            return int(
                s.scalar(text("SELECT (extract(epoch from clock_timestamp()) * 1e9)::bigint"))
            )
        return self.clock()

    def try_lease(self, name: str, *, holder: str, url: str, ttl_ns: int) -> dict[str, Any]:
        """Take or renew lease ``name`` if it is free, expired or already ours.

        Returns the lease row after the attempt plus ``is_holder`` and ``now_ns``.
        """
        with self._session() as s:
            now = self._db_now_ns(s)
            row = s.get(LeaseRow, name, with_for_update=True)
            if row is None:
                row = LeaseRow(
                    name=name, holder=holder, holder_url=url, expires_at_ns=now + ttl_ns, epoch=1
                )
                s.add(row)
                try:
                    s.flush()
                except IntegrityError:  # another controller created it first
                    s.rollback()
                    return {
                        "holder": "",
                        "holder_url": "",
                        "expires_at_ns": 0,
                        "epoch": 0,
                        "is_holder": False,
                        "now_ns": now,
                    }
            elif row.holder == holder or row.expires_at_ns < now:
                if row.holder != holder:
                    row.epoch += 1
                row.holder, row.holder_url, row.expires_at_ns = holder, url, now + ttl_ns
            result = _row_dict(row)
        return {**result, "is_holder": result["holder"] == holder, "now_ns": now}

    def release_lease(self, name: str, *, holder: str) -> None:
        with self._session() as s:
            s.execute(
                update(LeaseRow)
                .where(LeaseRow.name == name, LeaseRow.holder == holder)
                .values(expires_at_ns=0)
            )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by the "begin" listener
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API) run beside the writer; NORMAL sync is durable in WAL mode
    # against process crashes (the case the crash tests exercise).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
