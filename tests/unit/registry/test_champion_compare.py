"""The gate compares challenger and champion only on the bars after both were fitted, on the same fills."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.register import _fit_start, _span
from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import Params, RegisterParams
from tradepipe.core.execution import execute
from tradepipe.core.metrics import sharpe_ratio
from tradepipe.registry.compare import compare, no_comparison, replay
from tradepipe.registry.gates import decide
from tradepipe.tuning.ledger import span_key

DAYS = pd.bdate_range("2020-01-01", "2020-12-31", tz="UTC")
LIMITS = RegisterParams(min_sharpe=0.0, min_dsr=0.0, must_beat_benchmark=False, min_holdout_sharpe=None,
                        min_compare_bars=63)


def _returns(seed: int, mean: float) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(mean, 0.01, len(DAYS)), index=DAYS)


def test_both_sharpes_are_measured_on_the_same_bars_after_the_champions_fit() -> None:
    challenger, champion = _returns(1, 0.001), _returns(2, 0.0)
    fitted_until = DAYS[150]
    result = compare("3", fitted_until, challenger, champion.iloc[100:])
    assert result.bars == len(DAYS) - 151 and result.start == DAYS[151]
    assert result.challenger_sharpe == sharpe_ratio(challenger.iloc[151:])     # not the test span's figure
    assert result.champion_sharpe == sharpe_ratio(champion.iloc[151:])
    ok, text, compared = result.check(63)
    assert compared and ok == (result.challenger_sharpe > result.champion_sharpe)
    assert f"on the same {result.bars} bars from {DAYS[151].date()}" in text
    gate = decide(1.0, 1.0, 0.1, 0.0, LIMITS, result)
    assert gate.promote == ok and f"vs champion v3 {result.champion_sharpe:.3f}" in gate.reason


def test_a_champion_fitted_through_the_challengers_bars_is_not_compared() -> None:
    challenger = _returns(1, 0.001)
    short = compare("3", DAYS[-40], challenger, _returns(2, 0.01))        # 39 fresh bars < 63
    ok, text, compared = short.check(63)
    assert ok and not compared and "not compared: 39 bars after its fit end" in text
    none = no_comparison("4", DAYS[-1])
    assert none.check(63)[:2] == (True, none.check(63)[1]) and "0 bars after" in none.check(63)[1]
    assert decide(1.0, 1.0, 0.1, 0.0, LIMITS, short).promote              # the champion's test figures are not used


def test_the_holdout_is_the_last_check_and_only_when_asked() -> None:
    limits = LIMITS.model_copy(update={"min_holdout_sharpe": 0.0})
    assert decide(1.0, 1.0, 0.1, 0.0, limits, None, 0.2).checks[-1] == "pass: holdout Sharpe 0.200 >= minimum 0.000"
    failed = decide(1.0, 1.0, 0.1, 0.0, limits, None, -0.4)
    assert not failed.promote and failed.checks[-1] == "FAIL: holdout Sharpe -0.400 < minimum 0.000"
    assert not decide(1.0, 1.0, 0.1, 0.0, limits, None, None).promote      # asked for, but no holdout
    assert decide(1.0, 1.0, 0.1, 0.0, LIMITS, None, -5.0).promote          # null: not checked


def test_the_champion_is_replayed_on_the_fresh_bars_as_the_backtest_executes_it(tiny_policy: Path,
                                                                                 bars: pd.DataFrame) -> None:
    policy = TradingPolicy.load(tiny_policy)
    days = pd.DatetimeIndex(sorted(bars["timestamp"].unique()))
    fitted_until = days[-80]
    returns = replay(policy, bars, fitted_until, warmup_bars=63)
    assert returns.index.equals(days[-79:])                                 # every fresh fill, none before
    market = policy.market(bars)
    window = market.window(days[len(days) - 80 - 62])                     # the same warm-up, by hand
    by_hand = execute(policy.targets(window), window.returns, policy.spec.cost_rate).net_returns[-79:]
    np.testing.assert_allclose(returns.to_numpy(), by_hand, rtol=1e-9, atol=1e-12)
    assert replay(policy, bars, days[-1]).empty


def test_the_span_is_the_backtests_fill_bars(params: Params) -> None:
    days = pd.bdate_range("2014-12-29", "2015-01-09", tz="UTC")
    bars = pd.DataFrame({"timestamp": list(days) * 2, "symbol": ["B"] * len(days) + ["A"] * len(days)})
    p = params.model_copy(update={"split": params.split.model_copy(update={"val_end": "2014-12-31"})})
    # first test bar 2015-01-01 decides, 2015-01-02 is the first fill
    assert _span(bars, p) == span_key(["A", "B"], days[4], days[-1]) and str(days[4].date()) == "2015-01-02"


def test_the_fit_start_is_the_live_windows_first_bar(params: Params) -> None:
    days = pd.bdate_range("2010-01-01", "2022-12-30", tz="UTC")
    bars = pd.DataFrame({"timestamp": days, "symbol": "A"})
    start = pd.Timestamp(_fit_start(bars, params))
    # the live fit trains on the latest train_years (4) before the day after the last bar
    assert start == days[days.searchsorted(pd.Timestamp("2018-12-31", tz="UTC"))]
    assert params.backtest.walk_forward.train_years == 4
