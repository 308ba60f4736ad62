"""The risk manager: limits hold for any actions and prices, the breaker fires and re-enters, causal series."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tradepipe.agents.env import BookEnv
from tradepipe.agents.policy import rollout
from tradepipe.config import RiskParams
from tradepipe.core.execution import execute
from tradepipe.envs.portfolio import action_to_book
from tradepipe.risk import RiskManager, rolling_moments, trailing_quantile, turbulence
from tradepipe.risk.series import window_sums

OFF = RiskParams(max_weight=10.0, max_gross=10.0, target_vol=None, max_drawdown=None, stop_loss=None,
                 take_profit=None, turbulence_quantile=None)
N = 4


def _run(params: RiskParams, returns: npt.NDArray[np.float64], actions: npt.NDArray[np.float64],
         long_only: bool = True) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Risk-managed targets of a fixed action sequence, and the engine's equity of those targets."""
    env = BookEnv(returns, np.zeros((*returns.shape, 1)), cost_rate=0.001, long_only=long_only)
    actions_iter = iter(actions)
    targets = rollout(lambda obs: action_to_book(next(actions_iter)[None], long_only), env,
                      RiskManager(params, returns))
    return targets, execute(targets, returns, 0.001).equity


markets = st.integers(10, 60).flatmap(lambda t: st.tuples(
    arrays(np.float64, (t, N), elements=st.floats(-0.3, 0.3)),
    arrays(np.float64, (t, N + 1), elements=st.floats(-1.0, 1.0))))
limits = st.builds(RiskParams, long_only=st.booleans(), max_weight=st.floats(0.05, 1.0),
                   max_gross=st.floats(0.1, 1.5), target_vol=st.none() | st.floats(0.05, 0.5),
                   max_drawdown=st.none() | st.floats(0.05, 0.5), stop_loss=st.none() | st.floats(0.02, 0.5),
                   take_profit=st.none() | st.floats(0.02, 0.5), turbulence_quantile=st.none() | st.floats(0.5, 0.95),
                   vol_window=st.integers(2, 20), turbulence_window=st.integers(2, 20), min_periods=st.integers(2, 10),
                   no_trade_band=st.just(0.0) | st.floats(0.0, 0.1))


@settings(max_examples=60, deadline=None)
@given(markets, limits, st.booleans())
def test_executed_weights_respect_every_limit(market: tuple[np.ndarray, np.ndarray], params: RiskParams,
                                              long_only_actions: bool) -> None:
    returns, actions = market
    targets, _ = _run(params, returns, actions, long_only=long_only_actions)
    assert np.all(np.abs(targets) <= params.max_weight + 1e-12)
    assert np.all(np.abs(targets).sum(axis=1) <= params.max_gross + 1e-12)
    if params.long_only:
        assert np.all(targets >= 0.0)


@settings(max_examples=60, deadline=None)
@given(markets, st.floats(0.05, 0.4), st.integers(1, 8))
def test_breaker_cuts_to_cash_and_reenters_after_cooldown(market: tuple[np.ndarray, np.ndarray], limit: float,
                                                          cooldown: int) -> None:
    returns, actions = market
    params = OFF.model_copy(update={"max_drawdown": limit, "breaker_cooldown": cooldown})
    free, _ = _run(OFF, returns, actions)
    targets, equity = _run(params, returns, actions)
    # Independent replay of the rule on the engine's equity: equity[t] is the equity at close t.
    peak, left = 1.0, 0
    for t in range(len(returns)):
        waiting = left > 0
        left = max(left - 1, 0)
        peak = equity[t] if waiting and left == 0 else max(peak, equity[t])
        if not waiting and equity[t] < peak * (1.0 - limit):
            left = cooldown
        expected = np.zeros(N) if left > 0 else free[t]
        np.testing.assert_allclose(targets[t], expected, atol=1e-12)


def test_breaker_fires_on_a_crash_and_reenters() -> None:
    returns = np.zeros((30, N))
    returns[5] = -0.5  # every asset halves at close 5
    targets, _ = _run(OFF.model_copy(update={"max_drawdown": 0.2, "breaker_cooldown": 3}), returns,
                      np.zeros((30, N + 1)))
    np.testing.assert_allclose(targets[:5], 0.2)        # 1/(N+1) each before the crash
    np.testing.assert_allclose(targets[5:8], 0.0)       # three decisions in cash
    np.testing.assert_allclose(targets[8:], 0.2)        # re-entry: peak reset to the equity at close 8


def test_volatility_targeting_scales_by_target_over_ex_ante_vol() -> None:
    rng = np.random.default_rng(0)
    returns = rng.normal(0.0, 0.02, (40, 2))
    params = OFF.model_copy(update={"target_vol": 0.1, "vol_window": 10, "min_periods": 5})
    manager = RiskManager(params, returns)
    book = np.array([[0.6, 0.4, 0.0]])
    out = manager.apply(manager.start(1), book, np.array([30]), np.array([1.0]))
    w = book[0, :2]
    vol = np.sqrt(w @ np.cov(returns[21:31].T) @ w * 252)   # the 10 bars up to and including t = 30
    np.testing.assert_allclose(out[0, :2], w * min(1.0, 0.1 / vol), rtol=1e-10)
    np.testing.assert_allclose(out[0, 2], 1.0 - out[0, :2].sum())


def test_turbulence_matches_mahalanobis_of_the_trailing_window() -> None:
    rng = np.random.default_rng(1)
    returns = rng.normal(0.0, 0.01, (80, 3)) * [1.0, 2.0, 0.5]
    got = turbulence(returns, 30, 10)
    for t in (10, 25, 50, 79):
        history = returns[max(0, t - 30):t]
        gap = returns[t] - history.mean(axis=0)
        np.testing.assert_allclose(got[t], gap @ np.linalg.inv(np.cov(history.T)) @ gap, rtol=1e-8)
    assert np.isnan(got[:10]).all()


def test_turbulence_threshold_uses_only_past_values() -> None:
    x = np.arange(10.0)
    q = trailing_quantile(x, 4, 0.5, 2)
    np.testing.assert_allclose(q[2:], [np.median(x[max(0, t - 4):t]) for t in range(2, 10)])
    assert np.isnan(q[:2]).all()


def test_turbulent_bars_go_to_cash() -> None:
    rng = np.random.default_rng(2)
    returns = rng.normal(0.0, 0.01, (60, N))
    returns[40] = 0.2  # an extreme joint move
    params = OFF.model_copy(update={"turbulence_quantile": 0.9, "turbulence_window": 30, "min_periods": 10})
    targets, _ = _run(params, returns, np.zeros((60, N + 1)))
    assert RiskManager(params, returns).turbulent[40]
    np.testing.assert_allclose(targets[40], 0.0)
    np.testing.assert_allclose(targets[39], 0.2)


def test_stop_loss_flattens_the_position_for_the_cooldown() -> None:
    returns = np.zeros((20, N))
    returns[4, 0] = -0.3  # asset 0 falls 30% after its entry at close 1
    params = OFF.model_copy(update={"stop_loss": 0.2, "stop_cooldown": 3})
    targets, _ = _run(params, returns, np.zeros((20, N + 1)))
    np.testing.assert_allclose(targets[:4, 0], 0.2)
    np.testing.assert_allclose(targets[4:7, 0], 0.0)   # stopped at close 4 for three decisions
    np.testing.assert_allclose(targets[7:, 0], 0.2)    # a new position, new entry price
    np.testing.assert_allclose(targets[:, 1:], 0.2)


def test_env_equity_is_the_engines() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0, 0.02, (50, N))
    env = BookEnv(returns, np.zeros((50, N, 1)), cost_rate=0.002)
    targets = rollout(lambda obs: action_to_book(rng.uniform(-1, 1, (1, N + 1))), env,
                      RiskManager(RiskParams(), returns))
    env_equity = [1.0]
    _, info = env.reset()
    for t in range(49):
        info = env.step(np.r_[targets[t], 1.0 - targets[t].sum()])[4]
        env_equity.append(info["equity"])
    np.testing.assert_allclose(env_equity, execute(targets, returns, 0.002).equity, rtol=1e-12)


def _ex_ante_vol(returns: npt.NDArray[np.float64], w: npt.NDArray[np.float64], t: int, window: int) -> float:
    """Annualised volatility of ``w`` under the sample covariance of the ``window`` rows up to t (np.cov)."""
    rows = returns[max(0, t - window + 1):t + 1]
    return float(np.sqrt(max(w @ np.atleast_2d(np.cov(rows.T)) @ w, 0.0) * 252))


@settings(max_examples=40, deadline=None)
@given(markets, st.floats(0.02, 0.5), st.floats(0.2, 3.0), st.integers(2, 15), st.integers(2, 8))
def test_vol_targeting_caps_ex_ante_vol_and_never_scales_beyond_max_vol_scale(
        market: tuple[np.ndarray, np.ndarray], target: float, max_scale: float, window: int,
        min_periods: int) -> None:
    returns, actions = market
    params = OFF.model_copy(update={"long_only": False, "target_vol": target, "max_vol_scale": max_scale,
                                    "vol_window": window, "min_periods": min_periods})
    manager = RiskManager(params, returns)
    t = np.arange(len(returns))
    books = action_to_book(actions, long_only=False)     # one long-short book decided at each bar
    out = manager.apply(manager.start(len(t)), books, t, np.ones(len(t)))[:, :-1]
    for k in t:
        w, got = books[k, :-1], out[k]
        if min(k + 1, window) < max(min_periods, 2):  # no trailing covariance yet: untouched
            np.testing.assert_array_equal(got, w)
            continue
        vol = _ex_ante_vol(returns, w, k, window)
        scale = min(max_scale, target / vol) if vol > 0.0 else max_scale
        np.testing.assert_allclose(got, w * scale, rtol=1e-6, atol=1e-12)
        assert _ex_ante_vol(returns, got, k, window) <= target * (1.0 + 1e-6)
        assert np.all(np.abs(got) <= max_scale * np.abs(w) + 1e-12)


@settings(max_examples=40, deadline=None)
@given(markets, st.floats(0.02, 0.4), st.none() | st.floats(0.02, 0.6), st.integers(1, 6))
def test_stopped_assets_stay_flat_for_the_cooldown(market: tuple[np.ndarray, np.ndarray], stop: float,
                                                   take: float | None, cooldown: int) -> None:
    returns, actions = market
    params = OFF.model_copy(update={"stop_loss": stop, "take_profit": take, "stop_cooldown": cooldown})
    free, _ = _run(OFF, returns, actions)            # long-only softmax books: every asset always held
    targets, _ = _run(params, returns, actions)
    price = np.cumprod(1.0 + returns, axis=0)
    for i in range(N):
        entry, left = np.nan, 0
        for t in range(len(returns)):
            left = max(left - 1, 0)
            held = t > 0 and targets[t - 1, i] > 0.0   # the decision at t - 1 was filled at close t
            entry = (price[t, i] if np.isnan(entry) else entry) if held else np.nan
            gain = price[t, i] / entry - 1.0 if held else 0.0
            if held and (gain <= -stop or (take is not None and gain >= take)):
                left = cooldown
            np.testing.assert_allclose(targets[t, i], 0.0 if left > 0 else free[t, i], atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(markets, st.floats(0.0, 1.0), st.floats(0.3, 0.95), st.integers(3, 15), st.integers(2, 6))
def test_turbulent_bars_scale_gross_exposure_by_turbulence_scale(
        market: tuple[np.ndarray, np.ndarray], scale: float, q: float, window: int, min_periods: int) -> None:
    returns, actions = market
    params = OFF.model_copy(update={"long_only": False, "turbulence_quantile": q, "turbulence_scale": scale,
                                    "turbulence_window": window, "min_periods": min_periods})
    manager = RiskManager(params, returns)
    t = np.arange(len(returns))
    books = action_to_book(actions, long_only=False)
    out = manager.apply(manager.start(len(t)), books, t, np.ones(len(t)))[:, :-1]
    flagged = manager.turbulent
    assert not flagged[:min_periods + 1].any()       # no trailing history of turbulence yet
    gross, proposed = np.abs(out).sum(axis=1), np.abs(books[:, :-1]).sum(axis=1)
    np.testing.assert_allclose(gross[flagged], scale * proposed[flagged], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(out[~flagged], books[~flagged, :-1])


def test_window_sums_are_the_trailing_sums() -> None:
    x = np.random.default_rng(4).normal(size=(23, 2, 3))
    for window in (1, 4, 7, 30):
        expected = [x[max(0, t - window + 1):t + 1].sum(axis=0) for t in range(len(x))]
        np.testing.assert_allclose(window_sums(x, window), expected, rtol=1e-12, atol=1e-14)


def test_extreme_prices_leave_only_their_windows_undefined() -> None:
    rng = np.random.default_rng(5)
    close = 100.0 * np.cumprod(1.0 + rng.normal(0.0, 0.01, (200, N)), axis=0)
    clean = close[1:] / close[:-1] - 1.0
    close[120:123, 1] = 1e300  # finite but extreme closes: returns of 1e298, their squares overflow
    returns = close[1:] / close[:-1] - 1.0
    changed = np.flatnonzero(~np.isclose(returns, clean).all(axis=1))      # rows 119 .. 122
    extreme = changed[0]                                                    # the jump to 1e300 (the others are finite)
    window, min_periods = 20, 10
    mean, cov = rolling_moments(returns, window, min_periods)
    clean_mean, clean_cov = rolling_moments(clean, window, min_periods)
    rows = np.arange(len(returns))
    holds = (rows >= extreme) & (rows < extreme + window)                   # windows holding the extreme row
    differ = (rows >= changed[0]) & (rows < changed[-1] + window)           # windows holding any changed row
    assert np.isnan(cov[holds]).all() and np.isnan(mean[holds]).all()
    assert np.isfinite(cov[~holds & (rows >= min_periods - 1)]).all()
    np.testing.assert_allclose(cov[~differ], clean_cov[~differ], rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(mean[~differ], clean_mean[~differ], rtol=1e-9, equal_nan=True)

    turb, clean_turb = turbulence(returns, window, min_periods), turbulence(clean, window, min_periods)
    assert turb[extreme] == np.inf                                 # the jump itself: immeasurably turbulent
    assert np.isnan(turb[np.r_[False, holds[:-1]]]).all()          # trailing moments hold the extreme row
    keep = ~np.r_[False, differ[:-1]] & ~differ
    np.testing.assert_allclose(turb[keep], clean_turb[keep], rtol=1e-7, equal_nan=True)

    params = RiskParams(long_only=False, turbulence_window=window, vol_window=window, min_periods=min_periods,
                        turbulence_quantile=0.9, stop_loss=None, max_drawdown=None)
    manager = RiskManager(params, returns)
    t = np.arange(len(returns))
    books = manager.apply(manager.start(len(t)), action_to_book(rng.uniform(-1, 1, (len(t), N + 1)), False), t,
                          np.ones(len(t)))
    assert np.isfinite(books).all() and np.allclose(books.sum(axis=1), 1.0)
    assert np.all(np.abs(books[:, :-1]).sum(axis=1) <= params.max_gross + 1e-12)
    np.testing.assert_allclose(books[extreme, :-1], 0.0)          # turbulent: scaled to cash


def test_series_computed_from_a_later_bar_equal_the_full_series_there() -> None:
    """A live step builds the risk manager for its last bar only (``since``): the same rules, bit for bit."""
    rng = np.random.default_rng(11)
    returns = rng.normal(0.0, 0.02, (400, 3))
    returns[330] = 0.2                                      # a turbulent bar inside the compared range
    params = RiskParams(turbulence_window=60, turbulence_quantile=0.9, min_periods=10)
    full, late = RiskManager(params, returns), RiskManager(params, returns, since=320)
    assert full.turbulent[330] and late.turbulent[330]
    np.testing.assert_array_equal(full.turbulent[320:], late.turbulent[320:])
    np.testing.assert_array_equal(full.turbulence[260:], late.turbulence[260:])
    assert np.isnan(late.turbulence[:250]).all() and not late.turbulent[:320].any()


def test_no_trade_band_keeps_small_changes_and_always_allows_exits() -> None:
    rm = RiskManager(OFF.model_copy(update={"no_trade_band": 0.02}), np.zeros((5, 3)))
    state = rm.start(1)
    first = rm.apply(state, np.array([[0.30, 0.20, 0.10, 0.40]]), np.array([1]), np.ones(1))
    np.testing.assert_allclose(first, [[0.30, 0.20, 0.10, 0.40]])        # from cash: every change is traded
    second = rm.apply(state, np.array([[0.31, 0.25, 0.0, 0.44]]), np.array([2]), np.ones(1))
    # asset 0 moves 0.01 < band: kept at 0.30; asset 1 moves 0.05: traded; asset 2 closes: exits though 0.10 > 0
    np.testing.assert_allclose(second, [[0.30, 0.25, 0.0, 0.45]])
    third = rm.apply(state, np.array([[0.315, 0.25, 0.005, 0.43]]), np.array([3]), np.ones(1))
    np.testing.assert_allclose(third, [[0.30, 0.25, 0.0, 0.45]])         # a new entry below the band is not made


def test_no_trade_band_never_breaks_the_gross_cap() -> None:
    params = OFF.model_copy(update={"no_trade_band": 0.05, "max_gross": 1.0})
    rm = RiskManager(params, np.zeros((4, 3)))
    state = rm.start(1)
    rm.apply(state, np.array([[0.50, 0.30, 0.20, 0.0]]), np.array([1]), np.ones(1))
    book = rm.apply(state, np.array([[0.46, 0.54, 0.0, 0.0]]), np.array([2]), np.ones(1))  # 0.50 kept: gross 1.04
    assert np.isclose(np.abs(book[0, :3]).sum(), 1.0) and np.isclose(book[0, 0] / book[0, 1], 0.50 / 0.54)
    assert book[0, 2] == 0.0
