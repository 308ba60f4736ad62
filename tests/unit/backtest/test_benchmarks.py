"""Trailing-window benchmark allocations: values, warm-up, NaN assets, drift, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.covariance import LedoitWolf

from tradepipe.backtest.benchmarks import METHODS, Method, fit_allocation, trailing_allocation, trailing_weights
from tradepipe.backtest.strategies import month_starts
from tradepipe.core.execution import execute
from tradepipe.core.schema import to_wide

T, N, WINDOW, MIN_PERIODS = 160, 5, 60, 40


def synthetic(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated returns with distinct volatilities, returns[0] = NaN, rebalance every 20 bars."""
    rng = np.random.default_rng(seed)
    scales = np.array([0.005, 0.01, 0.015, 0.02, 0.03])
    returns = rng.normal(0.0003, 1.0, (T, N)) * scales + rng.normal(0, 0.004, (T, 1))
    returns[0] = np.nan
    rebalance = np.zeros(T, dtype=bool)
    rebalance[::20] = True
    return returns, rebalance


@pytest.mark.parametrize("method", METHODS)
def test_long_only_sum_to_one_after_warm_up_and_cash_before(method: Method) -> None:
    returns, rebalance = synthetic()
    fitted = trailing_weights(returns, rebalance, method, WINDOW, MIN_PERIODS)
    schedule = trailing_allocation(returns, rebalance, method, WINDOW, MIN_PERIODS)
    for t in map(int, np.flatnonzero(rebalance)):
        history = t - max(1, t - WINDOW + 1) + 1        # bars in the window, returns[0] excluded
        if history < MIN_PERIODS:
            assert (schedule[t] == 0).all() and (fitted[t] == 0).all(), t   # warm-up: all cash
        else:
            assert (schedule[t] >= 0).all() and np.isclose(schedule[t].sum(), 1.0), (t, schedule[t])
            np.testing.assert_array_equal(schedule[t], fitted[t])
    assert (schedule[:40] == 0).all() and schedule[40].sum() == pytest.approx(1.0)   # first fit: bar 40


def test_inverse_vol_is_one_over_sigma_on_the_trailing_window() -> None:
    returns, rebalance = synthetic()
    fitted = trailing_weights(returns, rebalance, "inverse_vol", WINDOW, MIN_PERIODS)
    for t in (40, 60, 100, 140):
        sigma = returns[max(1, t - WINDOW + 1):t + 1].std(axis=0, ddof=1)
        np.testing.assert_allclose(fitted[t], (1 / sigma) / (1 / sigma).sum(), rtol=1e-12)
    # by hand: σ = (1, 2, 4) → w ∝ (1, 1/2, 1/4) = (4, 2, 1) / 7
    base = np.array([[1.0], [-1.0]] * 10)
    np.testing.assert_allclose(fit_allocation(base * [0.01, 0.02, 0.04], "inverse_vol"), np.array([4, 2, 1]) / 7)


@pytest.mark.parametrize("method", METHODS)
def test_no_look_ahead(method: Method) -> None:
    returns, rebalance = synthetic()
    base_fit = trailing_weights(returns, rebalance, method, WINDOW, MIN_PERIODS)
    base_sched = trailing_allocation(returns, rebalance, method, WINDOW, MIN_PERIODS)
    base_run = execute(base_sched, returns, 0.001)
    rng = np.random.default_rng(99)
    for t in (60, 75, 100):                             # a rebalance bar and bars in between
        changed = returns.copy()
        changed[t + 1:] = rng.normal(0, 0.05, changed[t + 1:].shape)   # rewrite the whole future of t
        fit = trailing_weights(changed, rebalance, method, WINDOW, MIN_PERIODS)
        sched = trailing_allocation(changed, rebalance, method, WINDOW, MIN_PERIODS)
        # the decisions known at close t are bit-identical
        np.testing.assert_array_equal(fit[:t + 1], base_fit[:t + 1])
        # schedule rows before t identical; row t too on a rebalance bar (between rebalances row t is the book
        # drifted through t+1, the engine's encoding of "no trade at close t+1")
        upto = t + 1 if rebalance[t] else t
        np.testing.assert_array_equal(sched[:upto], base_sched[:upto])
        # and the backtest's P&L through bar t does not move
        np.testing.assert_array_equal(execute(sched, changed, 0.001).net_returns[:t + 1], base_run.net_returns[:t + 1])
        assert not np.allclose(fit[t + 1:], base_fit[t + 1:])       # control: the future did change the fits


@pytest.mark.parametrize("method", METHODS)
def test_trades_only_on_rebalance_bars_and_drifts_between(method: Method) -> None:
    returns, rebalance = synthetic(1)
    fitted = trailing_weights(returns, rebalance, method, WINDOW, MIN_PERIODS)
    changes = np.flatnonzero(np.abs(np.diff(fitted, axis=0)).sum(axis=1) > 0) + 1
    assert set(changes) <= set(np.flatnonzero(rebalance))
    schedule = trailing_allocation(returns, rebalance, method, WINDOW, MIN_PERIODS)
    run = execute(schedule, returns, 0.001)
    traded = np.flatnonzero(run.turnover > 1e-12)        # the fill at close t+1 of the decision at t
    assert set(traded - 1) <= set(np.flatnonzero(rebalance))
    assert {41, 61, 81} <= set(traded)                   # first fit at bar 40 is filled at close 41
    # between rebalances the book drifts with prices: held weights move although nothing is traded
    w = run.weights
    assert not np.allclose(w[42], w[43]) and run.turnover[43] == 0.0


def test_assets_with_missing_data_in_the_window_get_zero_weight() -> None:
    returns, rebalance = synthetic(2)
    returns[:70, 4] = np.nan                            # asset 4 listed at bar 70
    returns[100, 3] = np.nan                            # asset 3 has one missing bar
    for method in METHODS:
        fitted = trailing_weights(returns, rebalance, method, WINDOW, MIN_PERIODS)
        for t in np.flatnonzero(rebalance)[2:]:
            first = max(1, t - WINDOW + 1)
            missing = ~np.isfinite(returns[first:t + 1]).all(axis=0)
            assert (fitted[t][missing] == 0).all() and (fitted[t][~missing] > 0).all(), (method, t)
            assert np.isclose(fitted[t].sum(), 1.0)
        assert fitted[140, 4] > 0 and fitted[120, 4] == 0   # 70 + 60 - 1 = 129 ≤ 140: full window of data
        assert np.isfinite(trailing_allocation(returns, rebalance, method, WINDOW, MIN_PERIODS)).all()


def test_hrp_of_two_assets_is_inverse_variance() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (300, 2)) * [0.01, 0.02] + rng.normal(0, 0.01, (300, 1))
    var = x.var(axis=0, ddof=1)
    np.testing.assert_allclose(fit_allocation(x, "hrp"), var[::-1] / var.sum(), rtol=1e-9)


def test_mean_variance_and_hrp_on_real_data(bars: pd.DataFrame) -> None:
    close = to_wide(bars)
    returns = close.pct_change(fill_method=None).to_numpy()
    rebalance = month_starts(pd.DatetimeIndex(close.index))
    schedules = {m: trailing_allocation(returns, rebalance, m, 252, 126) for m in METHODS}
    for method, schedule in schedules.items():
        assert np.isfinite(schedule).all(), method
        fitted = schedule[rebalance & (schedule.sum(axis=1) > 0)]
        assert len(fitted) >= 30, method                # 2010–2013: every month from mid-2010 on
        assert (fitted >= 0).all() and np.allclose(fitted.sum(axis=1), 1.0), method
        assert np.isfinite(execute(schedule, returns, 0.001).equity).all()
    # minimum variance beats 1/N and inverse vol on the (Ledoit-Wolf) covariance it minimizes
    t = int(np.flatnonzero(rebalance)[-1])
    window = returns[t - 251:t + 1]
    cov = LedoitWolf().fit(window).covariance_
    mv = schedules["mean_variance"][t]
    for other in (np.full(4, 0.25), schedules["inverse_vol"][t], schedules["hrp"][t]):
        assert mv @ cov @ mv <= other @ cov @ other * (1 + 1e-6)


def test_max_sharpe_falls_back_to_min_variance_when_every_mean_is_negative() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(-0.01, 0.01, (100, 4))
    weights = fit_allocation(x, "mean_variance", mv_objective="max_sharpe")
    np.testing.assert_allclose(weights, fit_allocation(x, "mean_variance"), atol=1e-6)


def test_bad_arguments_are_rejected() -> None:
    returns, rebalance = synthetic()
    with pytest.raises(ValueError, match="min_periods"):
        trailing_weights(returns, rebalance, "hrp", 10, 20)
    with pytest.raises(ValueError, match="unknown method"):
        trailing_weights(returns, rebalance, "kelly", 60, 40)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rebalance"):
        trailing_weights(returns, rebalance[:-1], "hrp", 60, 40)
