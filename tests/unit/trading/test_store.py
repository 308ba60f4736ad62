"""The trade store's migrations create exactly the ORM tables; the risk state survives a JSON round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tradepipe.config import RiskParams
from tradepipe.risk import RiskManager
from tradepipe.trading.decision import state_from_json, state_to_json
from tradepipe.trading.store import TradeStore
from tradepipe.trading.tables import metadata


def test_migrations_create_the_tables_the_code_maps(tmp_path: Path) -> None:
    store = TradeStore(f"sqlite:///{tmp_path / 'trades.db'}")
    store.upgrade()                                                   # a second upgrade is a no-op
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


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
