"""The execution engine against a hand computation, and the reference strategies' schedules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradepipe.backtest.strategies import equal_weight, month_starts, periodic_rebalance, top_k_forecast
from tradepipe.core.execution import execute


def test_one_bar_fill_lag_costs_and_drift_by_hand() -> None:
    returns = np.array([[0.0, 0.0], [0.10, -0.10], [0.20, 0.00], [-0.50, 0.10]])
    targets = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0], [1.0, 0.0]])
    run = execute(targets, returns, cost_rate=0.01)
    # bar 1: fill 50/50 from cash at close 1 → turnover 1, cost 1%; no exposure over (0, 1]
    assert run.turnover[1] == 1.0 and np.isclose(run.net_returns[1], -0.01)
    # bar 2: hold 50/50 over (1, 2] → +10%; drifted to 0.6/0.4·(1/1.1); trade to the same 50/50 target
    growth = 1 + 0.5 * 0.20
    drifted = np.array([0.5 * 1.2, 0.5 * 1.0]) / growth
    turnover = np.abs(np.array([0.5, 0.5]) - drifted).sum()
    assert np.isclose(run.net_returns[2], growth * (1 - 0.01 * turnover) - 1)
    # bar 3: hold 50/50 over (2, 3] (the target decided at bar 1), then trade to 100/0 (decided at 2)
    growth = 1 + 0.5 * -0.5 + 0.5 * 0.1
    drifted = np.array([0.5 * 0.5, 0.5 * 1.1]) / growth
    assert np.isclose(run.net_returns[3], growth * (1 - 0.01 * np.abs(np.array([1.0, 0.0]) - drifted).sum()) - 1)
    np.testing.assert_allclose(run.equity, np.cumprod(1 + run.net_returns))


def test_decision_at_t_never_earns_return_of_t_plus_one() -> None:
    rng = np.random.default_rng(0)
    returns = rng.normal(0, 0.01, (50, 3))
    targets = rng.dirichlet(np.ones(3), 50)
    base = execute(targets, returns, 0.001).net_returns
    later = targets.copy()
    later[30:] = rng.dirichlet(np.ones(3), 20)       # change decisions from bar 30 on
    changed = execute(later, returns, 0.001).net_returns
    np.testing.assert_array_equal(base[:31], changed[:31])   # first affected: the fill at close 31
    assert not np.allclose(base[31:], changed[31:])


def test_periodic_rebalance_trades_only_on_rebalance_bars() -> None:
    rng = np.random.default_rng(1)
    returns = rng.normal(0, 0.01, (60, 4))
    ts = pd.date_range("2020-01-01", periods=60, freq="B", tz="UTC")
    flags = month_starts(ts)
    schedule = periodic_rebalance(equal_weight(60, 4), returns, flags)
    run = execute(schedule, returns, 0.001)
    traded = run.turnover[1:] > 1e-12                  # bar t+1 executes the decision of bar t
    np.testing.assert_array_equal(traded, flags[:-1])
    np.testing.assert_allclose(periodic_rebalance(equal_weight(60, 4), returns, np.ones(60, bool)),
                               equal_weight(60, 4))


def test_top_k_forecast_picks_highest() -> None:
    preds = np.array([[0.1, 0.3, -0.2, 0.2], [-0.1, -0.3, -0.2, -0.2]])
    np.testing.assert_allclose(top_k_forecast(preds, 2), [[0, 0.5, 0, 0.5], [0, 0, 0, 0]])
