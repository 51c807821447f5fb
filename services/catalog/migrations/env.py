"""Alembic environment: always given an open connection by services.catalog.migrate."""

from __future__ import annotations

from alembic import context

from services.catalog.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
