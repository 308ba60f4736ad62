"""Open the trade store: resolve its URL, migrate it with Alembic, hand out one transaction at a time."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.orm import Session, sessionmaker

from tradepipe.config import TradingParams
from tradepipe.paths import TRADES_DB
from tradepipe.settings import settings

__all__ = ["Checkpointer", "TradeStore", "db_url", "now_utc", "sqlite_pragmas", "utc"]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def db_url(root: Path, params: TradingParams) -> str:
    """The trade store's URL: ``$TRADEPIPE_TRADING_DB_URL``, else ``trading.db_url``, else ``trades.db`` in ``root``."""
    secret = settings().trading_db_url
    url = secret.get_secret_value() if secret is not None else params.db_url
    return url or f"sqlite:///{(root / TRADES_DB).resolve()}"


def utc(stamp: dt.datetime | pd.Timestamp) -> pd.Timestamp:
    """A timestamp in UTC (SQLite hands timezone-aware columns back naive, in UTC)."""
    ts = pd.Timestamp(stamp)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def now_utc() -> dt.datetime:
    """The wall clock, timezone-aware (the time rows are written)."""
    return dt.datetime.now(dt.UTC)


class TradeStore:
    """The trade store at ``url``, migrated to the newest revision when opened."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", sqlite_pragmas)
        self.upgrade()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def upgrade(self) -> None:
        """Run the Alembic migrations up to head (idempotent)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back (nothing written) when it raises."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """One transaction on a plain SQLAlchemy Core connection (the trading step's hot path): committed when the
        block ends, rolled back when it raises."""
        with self.engine.begin() as connection:
            yield connection

    def dispose(self) -> None:
        """Close the connection pool."""
        self.engine.dispose()


def sqlite_pragmas(connection: object, _record: object) -> None:
    """SQLite connections: foreign keys on, write-ahead log with NORMAL sync (a commit survives the process being
    killed; a power cut may lose the last commits, which reconciliation with the broker then reports)."""
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Checkpointer:
    """Checkpoints the write-ahead logs of SQLite ``engines`` from a background thread every ``interval_s``.

    SQLite's automatic checkpoint runs in the committing thread once the log passes 1,000 pages and syncs the
    database file: a pause of tens of milliseconds on every hundredth step or so. A long-lived process whose steps
    must not pause (``tradepipe serve``) turns it off on its connections and checkpoints here instead (PASSIVE:
    never waits for, nor blocks, a writer). Other engines are left alone. ``stop`` runs a last checkpoint.
    """

    def __init__(self, engines: list[sa.Engine], interval_s: float = 1.0) -> None:
        self.engines = [e for e in engines if e.dialect.name == "sqlite"]
        for engine in self.engines:
            sa.event.listen(engine, "connect", _manual_checkpoints)
            engine.dispose()  # pooled connections reopen with the automatic checkpoint off
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True, name="wal-checkpoints")
        self._thread.start()

    def checkpoint(self) -> None:
        """Copy every committed page of each log into its database file (what a crash then need not replay)."""
        for engine in self.engines:
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def stop(self) -> None:
        """Stop the thread after a last checkpoint."""
        self._stop.set()
        self._thread.join()
        self.checkpoint()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.checkpoint()
            except sa.exc.SQLAlchemyError as exc:  # e.g. a full disk: said, and tried again at the next interval
                log.warning("write-ahead log checkpoint failed: %s", type(exc).__name__)


def _manual_checkpoints(connection: object, _record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()
