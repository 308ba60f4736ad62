"""The trade store's migrations create exactly the ORM tables; the risk state survives a JSON round trip; the
checkpointer moves the write-ahead log into the database file off the committing thread."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from tests.fixtures.sqlite_files import rows_in_the_file
from tradepipe.config import RiskParams
from tradepipe.risk import RiskManager
from tradepipe.trading.decision import state_from_json, state_to_json
from tradepipe.trading.store import MIGRATIONS, Checkpointer, TradeStore
from tradepipe.trading.tables import Decision, metadata


def test_migrations_create_the_tables_the_code_maps(tmp_path: Path) -> None:
    store = TradeStore(f"sqlite:///{tmp_path / 'trades.db'}")
    store.upgrade()                                                   # a second upgrade is a no-op
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_a_store_of_the_first_revision_upgrades_keeping_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")  # a trade store written before the OOD guard existed
        connection.execute(sa.text(
            "INSERT INTO accounts VALUES ('old', '2022-01-03', 1000.0, 'tradepipe-agent', 1, '[\"AAPL\"]', "
            "'2020-01-02', '2022-01-03', 'simulated', 0, NULL)"))
        connection.execute(sa.text(
            "INSERT INTO decisions (account, bar, model_name, model_version, proposed, target, risk_state, "
            "created_at) VALUES ('old', '2022-01-03', 'tradepipe-agent', 1, '[0.5, 0.5]', '[0.5, 0.5]', '{}', "
            "'2022-01-03')"))
    engine.dispose()
    store = TradeStore(url)
    with store.transaction() as session:
        (row,) = session.scalars(sa.select(Decision)).all()
    assert row.target == [0.5, 0.5] and row.ood_score is None and row.guard is None
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_risk_state_round_trips_through_json() -> None:
    rng = np.random.default_rng(0)
    returns = rng.normal(0.0, 0.02, (120, 3))
    risk = RiskManager(RiskParams(stop_loss=0.02, max_drawdown=0.05, breaker_cooldown=3), returns)
    state = risk.start(1)
    equity = 1.0
    for t in range(60):
        book = risk.apply(state, rng.dirichlet(np.ones(4))[None], np.array([t]), np.array([equity]))
        equity *= 1.0 + float(book[0, :-1] @ returns[t])
    data = state_to_json(state)
    assert any(v is None for v in data["entry"]) or np.isfinite(state.entry).all()
    back = state_from_json(data, 3)
    for name in ("peak", "breaker_left", "entry", "side", "stop_left", "last"):
        np.testing.assert_array_equal(getattr(back, name), getattr(state, name))
    fresh = state_from_json({}, 3)
    np.testing.assert_array_equal(fresh.peak, [1.0])


def _store_with_an_account(path: Path) -> TradeStore:
    store = TradeStore(f"sqlite:///{path}")
    with store.begin() as conn:
        conn.execute(sa.text("INSERT INTO accounts VALUES ('a', '2022-01-03', 1000.0, 'tradepipe-agent', 1, "
                             "'[\"AAPL\"]', '2020-01-02', '2022-01-03', 'simulated', 0, NULL)"))
    return store


def _write_events(store: TradeStore, n: int) -> None:
    """``n`` events of 4 KB: more than the 1,000 pages after which SQLite would checkpoint on its own."""
    with store.begin() as conn:
        conn.execute(sa.text("INSERT INTO events (account, bar, kind, rule, symbol, message, created_at) VALUES "
                             "('a', NULL, 'note', NULL, NULL, :m, '2022-01-03')"), [{"m": "x" * 4000}] * n)


def test_the_checkpointer_turns_automatic_checkpoints_off_and_does_them_itself(tmp_path: Path) -> None:
    path = tmp_path / "trades.db"
    store = _store_with_an_account(path)
    checkpoints = Checkpointer([store.engine], interval_s=3600.0)  # only the checkpoints asked for below
    checkpoints.checkpoint()
    _write_events(store, 1500)
    assert rows_in_the_file(path, "events", tmp_path) == 0      # SQLite's own checkpoint (at 1,000 pages) did not run
    checkpoints.checkpoint()
    assert rows_in_the_file(path, "events", tmp_path) == 1500
    checkpoints.stop()


def test_the_checkpointer_thread_checkpoints_every_interval(tmp_path: Path) -> None:
    path = tmp_path / "trades.db"
    store = _store_with_an_account(path)
    checkpoints = Checkpointer([store.engine], interval_s=0.05)
    _write_events(store, 10)
    deadline = time.monotonic() + 10.0
    while rows_in_the_file(path, "events", tmp_path) != 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows_in_the_file(path, "events", tmp_path) == 10
    checkpoints.stop()
    assert not checkpoints._thread.is_alive()
