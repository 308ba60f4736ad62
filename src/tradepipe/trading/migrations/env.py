"""Alembic environment: migrations run on the connection ``store.upgrade`` hands over (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context

from tradepipe.trading.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
