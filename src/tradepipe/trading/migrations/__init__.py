"""Alembic migrations of the trade store (``tradepipe.trading.store.upgrade`` runs them)."""
