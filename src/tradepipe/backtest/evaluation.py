"""The out-of-sample comparison: benchmark runs, buy-and-hold of the index, trial count, metrics and notes.

Every strategy runs through the same execution engine and costs over the same test bars; results count from
the first fill on (bar 1: bar 0 only decides).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from tradepipe.backtest.benchmarks import Method, MVObjective, trailing_allocation
from tradepipe.backtest.strategies import equal_weight, month_starts, periodic_rebalance, top_k_forecast
from tradepipe.backtest.walk_forward import Window
from tradepipe.config import BacktestParams, Params
from tradepipe.core.execution import Execution, execute
from tradepipe.core.market import Market
from tradepipe.core.metrics import performance_metrics
from tradepipe.core.progress import progress
from tradepipe.core.schema import to_wide

# Allocations refitted monthly on a trailing window: name -> (method, mean-variance objective).
REFITTED_BENCHMARKS: dict[str, tuple[Method, MVObjective]] = {
    "inverse_vol_monthly": ("inverse_vol", "min_variance"),
    "min_variance_monthly": ("mean_variance", "min_variance"),
    "max_sharpe_monthly": ("mean_variance", "max_sharpe"),
    "hrp_monthly": ("hrp", "min_variance")}


@dataclass(frozen=True)
class IndexHold:
    """The index's simple returns over the fill bars (the beta/alpha benchmark) and its buy-and-hold run."""

    returns: pd.Series
    held: pd.Series  # net returns, named ``buy_and_hold_<index symbol>``


def benchmark_runs(market: Market, first: int, cost: float, window: int) -> dict[str, Execution]:
    """The reference strategies executed on ``market``'s bars from position ``first`` on: the forecast's top
    quartile, equal weight (daily, monthly) and the :data:`REFITTED_BENCHMARKS`, which fit on the ``window``
    bars before each month start (starting before ``first``, on data already known)."""
    test = market.take(slice(first, None))
    n_bars, n_assets = test.returns.shape
    ew = equal_weight(n_bars, n_assets)
    with progress("backtest benchmark strategies", 3 + len(REFITTED_BENCHMARKS)) as tracker:
        runs = {
            "forecast_top_quartile": execute(top_k_forecast(test.predictions, max(1, n_assets // 4)), test.returns,
                                             cost),
            "equal_weight_daily": execute(ew, test.returns, cost),
            "equal_weight_monthly": execute(periodic_rebalance(ew, test.returns, month_starts(test.timestamps)),
                                            test.returns, cost),
        }
        tracker.advance(3, note="forecast_top_quartile, equal_weight_daily, equal_weight_monthly")
        history = market.take(slice(max(0, first - window), None))
        months = month_starts(history.timestamps)
        for name, (method, objective) in REFITTED_BENCHMARKS.items():
            allocation = trailing_allocation(history.returns, months, method, window, min_periods=min(window, 63),
                                             mv_objective=objective)
            runs[name] = execute(allocation[-n_bars:], test.returns, cost)
            tracker.advance(note=name)
    return runs


def fill_returns(runs: dict[str, Execution], timestamps: pd.DatetimeIndex) -> dict[str, pd.Series]:
    """Each run's net returns over ``timestamps`` (its bars) from the first fill on, named by the run."""
    index = timestamps[1:]
    return {name: pd.Series(run.net_returns[1:], index=index, name=name) for name, run in runs.items()}


class Fills(NamedTuple):
    """What a run traded from the first fill on: the keyword arguments ``performance_metrics`` takes for them."""

    turnover: pd.Series
    costs: pd.Series
    weights: pd.DataFrame


def fills(run: Execution, index: pd.DatetimeIndex, symbols: list[str]) -> Fills:
    """Turnover, costs and weights of ``run`` from the first fill on, over ``index`` (its bars less the first)."""
    return Fills(pd.Series(run.turnover[1:], index=index), pd.Series(run.costs[1:], index=index),
                 pd.DataFrame(run.weights[1:], index=index, columns=symbols))


def buy_and_hold(bench_bars: pd.DataFrame, timestamps: pd.DatetimeIndex, cost: float) -> IndexHold | None:
    """The index of ``bench_bars`` (first symbol) over ``timestamps``, bought like every strategy: decided at
    bar 0, filled (paying costs) at the close of bar 1, then held; None without benchmark bars."""
    if bench_bars.empty:
        return None
    index = timestamps[1:]
    close = to_wide(bench_bars).iloc[:, 0]
    index_returns = close.pct_change(fill_method=None).reindex(index).fillna(0.0)
    held = execute(np.ones((len(timestamps), 1)), index_returns.reindex(timestamps).fillna(0.0).to_numpy()[:, None],
                   cost)
    return IndexHold(index_returns, pd.Series(held.net_returns[1:], index=index, name=f"buy_and_hold_{close.name}"))


def trial_count(predictor_trials: int, algos: Iterable[str], agent_trials: int) -> int:
    """Trials behind the agent's selection (the Deflated Sharpe ratio's count): predictor configurations tuned
    + agent algorithms compared + agent hyperparameter trials."""
    return predictor_trials + len(set(algos)) + agent_trials


def strategy_metrics(returns: dict[str, pd.Series], runs: dict[str, Execution], symbols: list[str],
                     benchmark: pd.Series | None, cfg: BacktestParams, n_trials: int) -> dict[str, dict[str, float]]:
    """``performance_metrics`` of each return series; those of ``runs`` also get turnover, costs and weights."""
    metrics: dict[str, dict[str, float]] = {}
    for name, series in returns.items():
        run = runs.get(name)
        extra = {} if run is None else fills(run, series.index, symbols)._asdict()
        metrics[name] = performance_metrics(series, benchmark=benchmark, periods_per_year=cfg.periods_per_year,
                                            risk_free_rate=cfg.risk_free_rate, n_trials=n_trials, **extra)
    return metrics


def flat_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{"<strategy>.<metric>": value}`` of the finite values."""
    return {f"{name}.{key}": float(value) for name, m in metrics.items() for key, value in m.items()
            if np.isfinite(value)}


def report_notes(params: Params, symbols: list[str], windows: list[Window], timestamps: pd.DatetimeIndex,
                 n_trials: int) -> list[str]:
    """The report's notes: universe, walk-forward windows (dated by ``timestamps``), costs, trial count."""
    wf = params.backtest.walk_forward
    return [f"Universe: {', '.join(symbols)} ({params.data.source}).",
            f"agent: walk-forward, {len(windows)} {wf.scheme} windows of "
            f"{wf.test_years} test year(s), agents refitted on each window's past "
            f"({', '.join(w.describe(timestamps) for w in windows)}). agent_fixed: the "
            "rl_train policy (the one registered), never refitted.",
            f"Costs: {params.costs.cost_bps} bps + slippage {params.costs.slippage_bps} bps per unit "
            "turnover; decisions at the close of bar t are filled at the close of bar t+1.",
            f"Deflated Sharpe ratio counts {n_trials} trials."]
