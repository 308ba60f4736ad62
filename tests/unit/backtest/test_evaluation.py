"""The out-of-sample comparison: benchmark runs equal their schedules executed by hand, buy-and-hold, ablations,
deflation only for the strategies the trials selected, the holdout measured apart, the seeds' spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradepipe.agents.policy import PolicySpec, rollout
from tradepipe.backtest.benchmarks import trailing_allocation
from tradepipe.backtest.evaluation import (
    REFITTED_BENCHMARKS,
    benchmark_runs,
    buy_and_hold,
    fill_returns,
    fills,
    flat_metrics,
    holdout_start,
    managed_runs,
    report_notes,
    schedule_actor,
    seed_summary,
    split_holdout,
    strategy_metrics,
)
from tradepipe.backtest.strategies import month_starts, top_k_forecast
from tradepipe.backtest.walk_forward import Window
from tradepipe.config import BacktestParams, Params
from tradepipe.core.execution import Financing, execute
from tradepipe.core.market import Market

DAYS = pd.bdate_range("2015-01-01", "2016-12-31", tz="UTC")
COST = 0.001


def _market(seed: int = 0) -> Market:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0005, 0.01, (len(DAYS), 4))
    predictions = rng.normal(size=(len(DAYS), 4)).astype(np.float32)
    return Market(DAYS, ["A", "B", "C", "D"], returns, np.zeros((len(DAYS), 4, 1), np.float32), predictions)


def test_benchmark_runs_execute_their_schedules_on_the_test_bars() -> None:
    market, first, window = _market(), 300, 100
    runs = benchmark_runs(market, first, COST, window)
    assert list(runs) == ["forecast_top_quartile", "equal_weight_daily", "equal_weight_monthly", *REFITTED_BENCHMARKS]
    test = market.returns[first:]
    n_bars = len(test)
    np.testing.assert_array_equal(runs["equal_weight_daily"].net_returns,
                                  execute(np.full((n_bars, 4), 0.25), test, COST).net_returns)
    # without costs, 1/N rebalanced daily earns the assets' mean return on every bar after the first fill
    free = benchmark_runs(market, first, 0.0, window)["equal_weight_daily"]
    np.testing.assert_allclose(free.net_returns[2:], test[2:].mean(axis=1))
    # top quartile of four assets: all in the single asset with the highest positive forecast
    top = np.zeros((n_bars, 4))
    preds = market.predictions[first:]
    best = preds.argmax(axis=1)
    top[np.arange(n_bars), best] = 1.0
    top[preds.max(axis=1) <= 0] = 0.0
    np.testing.assert_array_equal(runs["forecast_top_quartile"].net_returns, execute(top, test, COST).net_returns)
    # inverse vol refitted monthly on the trailing window, which reaches back before the test
    history = market.returns[first - window:]
    allocation = trailing_allocation(history, month_starts(DAYS[first - window:]), "inverse_vol", window,
                                     min_periods=63)
    np.testing.assert_array_equal(runs["inverse_vol_monthly"].net_returns,
                                  execute(allocation[-n_bars:], test, COST).net_returns)
    assert runs["inverse_vol_monthly"].weights[1].sum() == pytest.approx(1.0)  # invested from the first fill


def test_benchmarks_at_the_first_bar_wait_for_their_history() -> None:
    runs = benchmark_runs(_market(), 0, COST, 100)
    weights = runs["inverse_vol_monthly"].weights
    assert weights[:63].sum() == 0.0          # no estimate before min_periods bars: all cash
    assert weights[-1].sum() == pytest.approx(1.0)


def test_fill_returns_count_from_the_first_fill() -> None:
    run = execute(np.full((10, 2), 0.5), np.full((10, 2), 0.01), COST)
    returns = fill_returns({"x": run}, DAYS[:10])
    assert returns["x"].name == "x" and returns["x"].index.equals(DAYS[1:10])
    np.testing.assert_array_equal(returns["x"].to_numpy(), run.net_returns[1:])
    traded = fills(run, DAYS[1:10], ["A", "B"])
    # from cash: k = COST * (1 - k) of equity paid, so the book holds 50/50 of what is left
    assert traded.turnover.iloc[0] == pytest.approx(1 / (1 + COST))
    assert traded.costs.iloc[0] == pytest.approx(COST / (1 + COST))
    assert list(traded.weights.columns) == ["A", "B"] and len(traded.weights) == 9


def _index_bars(closes: list[float], days: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": days, "symbol": "SPY", "close": closes})


def test_buy_and_hold_pays_the_entry_cost_at_bar_one_then_earns_the_index() -> None:
    days = DAYS[:6]
    bench = _index_bars([100.0, 101.0, 99.0, 102.0, 102.0, 103.0], days)
    hold = buy_and_hold(bench, days, COST)
    assert hold is not None and hold.held.name == "buy_and_hold_SPY"
    simple = np.array([101 / 100, 99 / 101, 102 / 99, 1.0, 103 / 102]) - 1
    np.testing.assert_allclose(hold.returns.to_numpy(), simple)
    np.testing.assert_allclose(hold.held.to_numpy(), [-COST / (1 + COST), *simple[1:]])
    assert hold.held.index.equals(days[1:])


def test_buy_and_hold_fills_missing_index_bars_with_zero_and_needs_bars() -> None:
    days = DAYS[:4]
    hold = buy_and_hold(_index_bars([100.0, 110.0, 121.0], days[[0, 1, 3]]), days, COST)
    assert hold is not None
    np.testing.assert_allclose(hold.returns.to_numpy(), [0.1, 0.0, 0.1])
    assert buy_and_hold(_index_bars([], days[:0]), days, COST) is None


def test_strategy_metrics_trading_figures_only_for_runs_and_flat_keys_drop_non_finite() -> None:
    run = execute(np.full((50, 2), 0.5), np.random.default_rng(1).normal(0, 0.01, (50, 2)), COST)
    returns = fill_returns({"run": run}, DAYS[:50])
    returns["index"] = pd.Series(np.random.default_rng(2).normal(0, 0.01, 49), index=DAYS[1:50], name="index")
    metrics = strategy_metrics(returns, {"run": run}, ["A", "B"], None, BacktestParams(), 3, 0.5, ["run"])
    assert "turnover" in metrics["run"] and "turnover" not in metrics["index"]
    flat = flat_metrics({"a": {"x": 1.0, "y": float("nan"), "z": float("inf")}, "b": {"x": 2}})
    assert flat == {"a.x": 1.0, "b.x": 2.0}


def test_only_the_strategies_the_trials_selected_are_deflated_by_the_measured_spread() -> None:
    rng = np.random.default_rng(4)
    returns = {name: pd.Series(rng.normal(0.001, 0.01, 500), index=DAYS[:500], name=name) for name in ("a", "b")}
    one = strategy_metrics(returns, {}, [], None, BacktestParams(), 1, 0.0, ["a"])
    many = strategy_metrics(returns, {}, [], None, BacktestParams(), 20, 0.8, ["a"])
    assert "dsr" not in one["b"] and "dsr" not in many["b"] and many["b"]["psr"] == one["b"]["psr"]
    assert one["a"]["dsr"] == pytest.approx(one["a"]["psr"])          # one trial: nothing to deflate by
    assert many["a"]["dsr"] < one["a"]["dsr"]                         # 20 trials spread by 0.8 a year
    wider = strategy_metrics(returns, {}, [], None, BacktestParams(), 20, 1.6, ["a"])
    assert wider["a"]["dsr"] < many["a"]["dsr"]


def test_seed_summary_reports_each_seed_and_the_spread() -> None:
    metrics = {"agent": {"sharpe": 0.5}, "agent_seed_43": {"sharpe": 1.0}, "agent_seed_44": {"sharpe": 0.0}}
    summary = seed_summary(metrics, {42: "agent", 43: "agent_seed_43", 44: "agent_seed_44"})
    assert summary == {"n": 3.0, "sharpe.42": 0.5, "sharpe.43": 1.0, "sharpe.44": 0.0, "sharpe_mean": 0.5,
                       "sharpe_sd": pytest.approx(0.5), "sharpe_min": 0.0, "sharpe_max": 1.0}
    assert seed_summary({"agent": {"sharpe": 0.3}}, {42: "agent"})["sharpe_sd"] == 0.0


def test_ablations_trade_1_over_n_and_the_forecast_through_the_risk_manager_as_one_book() -> None:
    market = _market()
    spec = PolicySpec(["A", "B", "C", "D"], 1, COST)
    runs = managed_runs(market, 250, spec, warmup_bars=63)
    assert list(runs) == ["equal_weight_risk_managed", "forecast_risk_managed"]
    ew, fc = (runs[name].weights[1:] for name in runs)
    assert len(ew) == len(DAYS) - 250 - 1
    invested = ew.sum(axis=1) > 0
    assert invested.mean() > 0.9                                      # the risk manager mostly lets 1/N trade
    np.testing.assert_allclose(ew[invested], ew[invested][:, :1] * np.ones((1, 4)), rtol=1e-9)  # equal, scaled
    assert (ew.sum(axis=1) <= 1.0 + 1e-9).all() and ew.sum(axis=1).min() < 1.0   # vol targeting scales it down
    chosen = top_k_forecast(market.predictions[250:], 1)[:-1] > 0     # the book decided at t is held from t + 1
    assert ((fc > 1e-12) <= chosen).all()                             # only the top-quartile asset is held
    # one rollout from the warm-up to the end: the risk state (breaker, peak, stops) runs across every boundary
    history = market.take(slice(250 - 63, None))
    books = np.concatenate([np.full((len(history.timestamps), 4), 0.25), np.zeros((len(history.timestamps), 1))], 1)
    stitched = rollout(lambda obs: books[:1], spec.env(history), spec.risk_manager(history), spec.lookback - 1)
    np.testing.assert_array_equal(runs["equal_weight_risk_managed"].weights[1:], stitched[63:-1])
    proposer = schedule_actor(np.full((len(DAYS), 4), 0.25))
    np.testing.assert_array_equal(proposer(7, np.zeros((1, 3), np.float32)), [[0.25, 0.25, 0.25, 0.25, 0.0]])
    financed = managed_runs(market, 250, spec, 63, Financing(cash_rate=0.001))["equal_weight_risk_managed"]
    cash = 1.0 - runs["equal_weight_risk_managed"].weights[1:-1].sum(axis=1)
    assert (financed.net_returns[2:] > runs["equal_weight_risk_managed"].net_returns[2:] - 1e-15).all()
    assert (financed.net_returns[2:] - runs["equal_weight_risk_managed"].net_returns[2:]).max() == pytest.approx(
        0.001 * cash.max(), rel=0.05)


def test_the_holdout_is_the_last_years_of_fills_and_measured_apart() -> None:
    fills_index = DAYS[1:]
    start = holdout_start(fills_index, 1.0)
    assert start == pd.Timestamp("2016-01-01", tz="UTC")              # the first bar after 2015-12-31
    assert holdout_start(fills_index, 0.0) is None
    with pytest.raises(ValueError, match="backtest.holdout_years=3.0 leaves 0 test bars before the holdout"):
        holdout_start(fills_index, 3.0)
    run = execute(np.full((len(DAYS), 2), 0.5), np.random.default_rng(3).normal(0, 0.01, (len(DAYS), 2)), COST)
    returns = fill_returns({"run": run}, DAYS)
    main, held = split_holdout(returns, start)
    assert main["run"].index[-1] < start <= held["run"].index[0]
    assert len(main["run"]) + len(held["run"]) == len(DAYS) - 1
    whole = strategy_metrics(held, {"run": run}, ["A", "B"], None, BacktestParams(), 1, 0.0, [], fill_index=DAYS[1:])
    alone = strategy_metrics({"run": held["run"]}, {}, [], None, BacktestParams(), 1, 0.0, [])
    assert whole["run"]["sharpe"] == alone["run"]["sharpe"] and "dsr" not in whole["run"]
    turnover = fills(run, DAYS[1:], ["A", "B"]).turnover
    assert whole["run"]["turnover"] == pytest.approx(turnover.loc[start:].mean() * 252)   # the holdout's bars only
    assert whole["run"]["turnover"] != pytest.approx(turnover.mean() * 252)


def test_report_notes_name_the_windows_seeds_ablations_and_costs(params: Params) -> None:
    windows = [Window(slice(0, 100), slice(105, 200)), Window(slice(100, 200), slice(205, 300))]
    notes = report_notes(params, ["A", "B"], windows, DAYS, [42, 43, 44], pd.Timestamp("2016-01-04", tz="UTC"),
                         "buy_and_hold_SPX")
    assert notes[0] == f"Universe: A, B ({params.data.source})."
    assert f"2 {params.backtest.walk_forward.scheme} windows" in notes[1]
    assert windows[1].describe(DAYS) in notes[1]
    assert "seed 42" in notes[1] and "agent_seed_43, agent_seed_44" in notes[1] and "live fit" in notes[1]
    assert "not the one registered" in notes[2]
    assert notes[3].startswith("agent_no_forecast (ablation: does the predictor help?)") and "seed 42" in notes[3]
    assert "not a ledger trial" in notes[3]
    assert "risk manager" in notes[4] and "across the windows, as the agent's does" in notes[4]
    assert notes[5].startswith("Primary benchmark: equal_weight_daily")
    assert "buy_and_hold_SPX is a price index" in notes[5]
    assert notes[6].startswith("Holdout: the bars from 2016-01-04 on") and "register.min_holdout_sharpe" in notes[6]
    assert "Cash earns" in notes[7] and "no_trade_band" in notes[7]
    off = params.model_copy(update={"backtest": params.backtest.model_copy(update={"no_forecast_ablation": False})})
    assert not any("agent_no_forecast" in n for n in report_notes(off, ["A", "B"], windows, DAYS, [42]))
