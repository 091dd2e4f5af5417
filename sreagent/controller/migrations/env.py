"""Alembic environment: migrations run on the connection the run store hands over."""

from __future__ import annotations

from alembic import context

from sreagent.controller._models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the run store always passes one
    raise RuntimeError("sreagent migrations run through RunStore.migrate(), not the alembic CLI")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
