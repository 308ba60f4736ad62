"""The execution engine against a hand computation, and the reference strategies' schedules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradepipe.backtest.strategies import equal_weight, month_starts, periodic_rebalance, top_k_forecast
from tradepipe.core.execution import Financing, cost_fraction, execute, rebalance


def test_one_bar_fill_lag_costs_and_drift_by_hand() -> None:
    returns = np.array([[0.0, 0.0], [0.10, -0.10], [0.20, 0.00], [-0.50, 0.10]])
    targets = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0], [1.0, 0.0]])
    c = 0.01
    run = execute(targets, returns, cost_rate=c)
    # bar 1: buy 50/50 from cash at close 1; the cost k = c * (1 - k) leaves the book at 50/50 of 1 - k
    assert np.isclose(run.costs[1], c / (1 + c)) and np.isclose(run.turnover[1], 1 / (1 + c))
    assert np.isclose(run.net_returns[1], -c / (1 + c))
    # bar 2: hold 50/50 over (1, 2] → +10%; drifted to 0.6/0.4·(1/1.1); trade back to 50/50 of what is left:
    # sell asset 0, buy asset 1, so k = c * ((0.6/1.1 - 0.5 (1 - k)) + (0.5 (1 - k) - 0.5/1.1)) = c * 0.1/1.1
    growth = 1 + 0.5 * 0.20
    k = c * (0.6 - 0.5) / growth
    assert np.isclose(run.costs[2], k) and np.isclose(run.net_returns[2], growth * (1 - k) - 1)
    # bar 3: hold 50/50 over (2, 3] (the target decided at bar 1), then trade to 100/0 (decided at 2):
    # buy asset 0 up to (1 - k), sell all of asset 1: k = c * ((1 - k) - d0 + d1), solved for k
    growth = 1 + 0.5 * -0.5 + 0.5 * 0.1
    d0, d1 = 0.5 * 0.5 / growth, 0.5 * 1.1 / growth
    k = c * (1 - d0 + d1) / (1 + c)
    assert np.isclose(run.costs[3], k) and np.isclose(run.net_returns[3], growth * (1 - k) - 1)
    np.testing.assert_allclose(run.costs, c * run.turnover)
    np.testing.assert_allclose(run.equity, np.cumprod(1 + run.net_returns))


def test_cost_fraction_is_the_fixed_point_even_when_a_trade_changes_side() -> None:
    rng = np.random.default_rng(3)
    drifted = rng.dirichlet(np.ones(6), 200) * 0.9
    target = drifted * (1.0 + rng.normal(0.0, 0.002, drifted.shape))   # tiny trades: costs flip some of them
    target[:100] = rng.dirichlet(np.ones(6), 100)
    k = cost_fraction(target, drifted, 0.05)
    np.testing.assert_allclose(k, 0.05 * np.abs(target * (1 - k)[:, None] - drifted).sum(axis=1), rtol=0, atol=1e-15)
    one = np.array([cost_fraction(t, d, 0.05) for t, d in zip(target, drifted, strict=True)])
    np.testing.assert_allclose(one, k, rtol=0, atol=1e-15)


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


def test_cash_earns_the_cash_rate_negative_cash_pays_it_and_shorts_pay_the_borrow_fee() -> None:
    returns = np.array([[0.0, 0.0], [0.0, 0.0], [0.02, -0.01], [0.01, 0.03]])
    # bar 2 holds 30% long and 20% short (cash 1 - 0.1 = 0.9); bar 3 holds 120% long (cash -0.2)
    targets = np.array([[0.3, -0.2], [1.2, 0.0], [1.2, 0.0], [1.2, 0.0]])
    fin = Financing.annual(cash_rate=0.0504, borrow_bps=252.0, periods_per_year=252)
    assert np.isclose(fin.cash_rate, 0.0002) and np.isclose(fin.borrow_rate, 0.0001)
    run = execute(targets, returns, 0.0, fin)
    assert np.isclose(run.net_returns[1], 0.0002)                       # all cash before the first fill
    assert np.isclose(run.net_returns[2], 0.3 * 0.02 + 0.2 * 0.01 + 0.9 * 0.0002 - 0.2 * 0.0001)
    assert np.isclose(run.net_returns[3], 1.2 * 0.01 - 0.2 * 0.0002)    # negative cash is charged the rate
    plain = execute(targets, returns, 0.001)
    np.testing.assert_array_equal(execute(targets, returns, 0.001, Financing()).net_returns, plain.net_returns)


def test_one_book_rebalance_with_financing_equals_the_batched_one() -> None:
    fin = Financing(0.0003, 0.0002)
    held, ret, target = np.array([0.4, -0.3]), np.array([0.01, -0.02]), np.array([0.2, 0.1])
    one = rebalance(held, ret, target, 0.002, fin)
    batch = rebalance(held[None], ret[None], target[None], 0.002, fin)
    assert np.allclose(one, [b[0] for b in batch]) and isinstance(one[0], float)
