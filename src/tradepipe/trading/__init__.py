"""Paper trading: a promoted champion trades persistent accounts bar by bar, every decision, order and fill on record.

- ``store``: the trade store (SQLAlchemy 2, Alembic migrations; SQLite by default, PostgreSQL by URL).
- ``broker``: the broker protocol and the ``SimulatedBroker``, which keeps its own ledger apart from the store.
- ``orders``: sizing targets into orders (the backtest's accounting) and the fail-safes checked before they leave.
- ``decision``: the champion's decision for one bar from the account's real book and stored risk state.
- ``guard``: the out-of-distribution guard of a decision (hold the book or go to cash beyond a threshold).
- ``step``: one bar for one account (reconcile, fill, decide), safe to retry; ``replay`` compares paper and backtest.
- ``posted``: bars posted to the serving app's account endpoint, as plain columns.
- ``accounts`` (open, halt, resume, switch, status), ``desk`` (a project's wiring), ``commands`` (``tradepipe trade``).
``migrations/`` holds the Alembic scripts (data files, not modules).
"""

__all__ = ["accounts", "broker", "commands", "decision", "desk", "guard", "orders", "posted", "replay", "step",
           "store", "summary", "tables"]
