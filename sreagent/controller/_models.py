"""SQLAlchemy 2 models of the run store. Times are integer ns since the Unix epoch (UTC), so
SQLite and PostgreSQL store and compare them the same way. The schema is created by the Alembic
migrations in ``migrations/versions``, never by ``create_all``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(256), index=True)
    host: Mapped[str] = mapped_column(String(253), index=True)
    trigger: Mapped[str] = mapped_column(String(256))
    chain: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), index=True)
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    window_start_ns: Mapped[int] = mapped_column(BigInteger)
    window_end_ns: Mapped[int] = mapped_column(BigInteger)
    created_at_ns: Mapped[int] = mapped_column(BigInteger)
    updated_at_ns: Mapped[int] = mapped_column(BigInteger, index=True)
    error: Mapped[str] = mapped_column(Text, default="")
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RunEventRow(Base):
    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    at_ns: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ArtifactRow(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "artifact_id", name="uq_artifacts_run_artifact"),)

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    artifact_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    logical_time: Mapped[int] = mapped_column(BigInteger)
    host: Mapped[str] = mapped_column(String(253), index=True)
    created_at_ns: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class IdempotencyRow(Base):
    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    """``started`` before the effect, ``completed`` with its result after."""
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at_ns: Mapped[int] = mapped_column(BigInteger)
    completed_at_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ApprovalRow(Base):
    __tablename__ = "approvals"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    requested_at_ns: Mapped[int] = mapped_column(BigInteger)
    resolved_at_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at_ns: Mapped[int] = mapped_column(BigInteger, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(512))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReceiptRow(Base):
    __tablename__ = "ingest_receipts"

    batch_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    collector_id: Mapped[str] = mapped_column(String(128))
    producer_epoch: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    host: Mapped[str] = mapped_column(String(253))
    digest: Mapped[str] = mapped_column(String(64))
    samples: Mapped[int] = mapped_column(Integer)
    accepted_at_ns: Mapped[int] = mapped_column(BigInteger, index=True)


class IncidentRow(Base):
    __tablename__ = "incidents"

    incident_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(256), index=True)
    host: Mapped[str] = mapped_column(String(253), index=True)
    source: Mapped[str] = mapped_column(String(32))
    """``detector`` (a threshold rule) or ``alertmanager``."""
    title: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    opened_at_ns: Mapped[int] = mapped_column(BigInteger)
    updated_at_ns: Mapped[int] = mapped_column(BigInteger)
    closed_at_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    run_id: Mapped[str] = mapped_column(String(64), default="")
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LeaseRow(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    holder_url: Mapped[str] = mapped_column(String(512))
    expires_at_ns: Mapped[int] = mapped_column(BigInteger)
    epoch: Mapped[int] = mapped_column(BigInteger)


Index("ix_run_events_run_id_id", RunEventRow.run_id, RunEventRow.id)
