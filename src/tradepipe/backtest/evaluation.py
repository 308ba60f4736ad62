"""The out-of-sample comparison: benchmark runs, risk-managed ablations, buy-and-hold of the index, metrics (the
Deflated Sharpe for the strategies the trials selected), the holdout, the seeds' spread and notes.

Every strategy runs through the same execution engine, costs and financing over the same test bars; results
count from the first fill on (bar 1: bar 0 only decides). The last ``backtest.holdout_years`` of those bars are
the holdout (:func:`holdout_start`): the books run through it unbroken, but its returns are measured apart
(``holdout.*``) and no figure of the main table includes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from tradepipe.agents.policy import BarActor, PolicySpec
from tradepipe.backtest.benchmarks import Method, MVObjective, trailing_allocation
from tradepipe.backtest.strategies import equal_weight, month_starts, periodic_rebalance, top_k_forecast
from tradepipe.backtest.walk_forward import Window, stitched_book
from tradepipe.config import BacktestParams, Params
from tradepipe.core.execution import Execution, Financing, execute
from tradepipe.core.market import Market
from tradepipe.core.metrics import performance_metrics
from tradepipe.core.progress import progress
from tradepipe.core.schema import to_wide
from tradepipe.core.types import Array

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


def benchmark_runs(market: Market, first: int, cost: float, window: int,
                   financing: Financing | None = None) -> dict[str, Execution]:
    """The reference strategies executed on ``market``'s bars from position ``first`` on: the forecast's top
    quartile, equal weight (daily, monthly) and the :data:`REFITTED_BENCHMARKS`, which fit on the ``window``
    bars before each month start (starting before ``first``, on data already known)."""
    test = market.take(slice(first, None))
    n_bars, n_assets = test.returns.shape
    ew = equal_weight(n_bars, n_assets)
    with progress("backtest benchmark strategies", 3 + len(REFITTED_BENCHMARKS)) as tracker:
        runs = {
            "forecast_top_quartile": execute(top_k_forecast(test.predictions, max(1, n_assets // 4)), test.returns,
                                             cost, financing),
            "equal_weight_daily": execute(ew, test.returns, cost, financing),
            "equal_weight_monthly": execute(periodic_rebalance(ew, test.returns, month_starts(test.timestamps)),
                                            test.returns, cost, financing),
        }
        tracker.advance(3, note="forecast_top_quartile, equal_weight_daily, equal_weight_monthly")
        history = market.take(slice(max(0, first - window), None))
        months = month_starts(history.timestamps)
        for name, (method, objective) in REFITTED_BENCHMARKS.items():
            allocation = trailing_allocation(history.returns, months, method, window, min_periods=min(window, 63),
                                             mv_objective=objective)
            runs[name] = execute(allocation[-n_bars:], test.returns, cost, financing)
            tracker.advance(note=name)
    return runs


def schedule_actor(books: Array) -> BarActor:
    """Proposes the fixed book ``books[t]`` (asset weights; the rest is cash) at bar t, whatever it observes: what
    the risk overlay alone makes of a strategy with no agent, through the agent's own env, risk rules and fills."""
    proposed = np.concatenate([books, 1.0 - books.sum(axis=1, keepdims=True)], axis=1)
    return lambda t, _obs: proposed[t][None]


def managed_runs(market: Market, first: int, spec: PolicySpec, warmup_bars: int,
                 financing: Financing | None = None) -> dict[str, Execution]:
    """Ablations: 1/N and the forecast's top quartile traded through the agent's risk manager and executed on the
    test bars (``market``'s from position ``first`` on). Each is one book (``walk_forward.stitched_book``, as the
    agent's) rolled out once from ``warmup_bars`` before ``first`` to the end, its risk state (breaker, peak, stops,
    last weights) carried across the walk-forward boundaries."""
    test = market.take(slice(first, None))
    quartile = max(1, len(market.symbols) // 4)
    schedules = {"equal_weight_risk_managed": equal_weight(len(market.timestamps), len(market.symbols)),
                 "forecast_risk_managed": top_k_forecast(market.predictions, quartile)}
    return {name: execute(stitched_book(market, spec, [(first, schedule_actor(books))], warmup_bars).targets[first:],
                          test.returns, spec.cost_rate, financing)
            for name, books in schedules.items()}


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


def buy_and_hold(bench_bars: pd.DataFrame, timestamps: pd.DatetimeIndex, cost: float,
                 financing: Financing | None = None) -> IndexHold | None:
    """The index of ``bench_bars`` (first symbol) over ``timestamps``, bought like every strategy: decided at
    bar 0, filled (paying costs) at the close of bar 1, then held; None without benchmark bars. The bundled index
    is a price index (no dividends) while the stocks' closes are dividend-adjusted: it understates a total-return
    index by its dividend yield, so the primary benchmark is ``equal_weight_daily`` (1/N on the same universe)."""
    if bench_bars.empty:
        return None
    index = timestamps[1:]
    close = to_wide(bench_bars).iloc[:, 0]
    index_returns = close.pct_change(fill_method=None).reindex(index).fillna(0.0)
    held = execute(np.ones((len(timestamps), 1)), index_returns.reindex(timestamps).fillna(0.0).to_numpy()[:, None],
                   cost, financing)
    return IndexHold(index_returns, pd.Series(held.net_returns[1:], index=index, name=f"buy_and_hold_{close.name}"))


def strategy_metrics(returns: dict[str, pd.Series], runs: dict[str, Execution], symbols: list[str],
                     benchmark: pd.Series | None, cfg: BacktestParams, n_trials: int, trials_sharpe_std: float,
                     deflated: Iterable[str], fill_index: pd.DatetimeIndex | None = None
                     ) -> dict[str, dict[str, float]]:
    """``performance_metrics`` of each return series; those of ``runs`` also get turnover, costs and weights.

    ``fill_index``: the bars of the runs' fills (their bars less the first) when the series cover only some of
    them (the main span or the holdout); by default each series' own index.

    The strategies in ``deflated`` (the ones the ledger's trials selected) get the Deflated Sharpe ratio against
    ``n_trials`` trials whose annualised Sharpes spread by ``trials_sharpe_std``; the others had no trials and
    report the Probabilistic Sharpe ratio (against 0) only.
    """
    chosen = set(deflated)
    metrics: dict[str, dict[str, float]] = {}
    for name, series in returns.items():
        run = runs.get(name)
        extra: dict[str, pd.Series | pd.DataFrame] = {}
        if run is not None:
            done = fills(run, series.index if fill_index is None else fill_index, symbols)
            extra = {key: value.loc[series.index] for key, value in done._asdict().items()}
        m = performance_metrics(series, benchmark=None if benchmark is None else benchmark.loc[series.index],
                                periods_per_year=cfg.periods_per_year,
                                risk_free_rate=cfg.risk_free_rate, n_trials=n_trials,
                                trials_sharpe_std=trials_sharpe_std, **extra)
        metrics[name] = m if name in chosen else {k: v for k, v in m.items() if k != "dsr"}
    return metrics


def holdout_start(fill_index: pd.DatetimeIndex, years: float) -> pd.Timestamp | None:
    """The first bar of the holdout: the fills of the last ``years`` years (``years`` * 365.25 days) up to the last
    bar; None when ``years`` is 0. ValueError when it leaves fewer than 2 fills before it or in it."""
    if years <= 0:
        return None
    start = fill_index[-1] - pd.Timedelta(days=round(years * 365.25))
    i = int(fill_index.searchsorted(start, side="right"))
    if i < 2 or len(fill_index) - i < 2:
        raise ValueError(f"backtest.holdout_years={years} leaves {i} test bars before the holdout and "
                         f"{len(fill_index) - i} in it ({fill_index[0].date()}..{fill_index[-1].date()}); "
                         "both need at least 2: lower it or extend data.end")
    return pd.Timestamp(fill_index[i])


def split_holdout(returns: dict[str, pd.Series], start: pd.Timestamp | None
                  ) -> tuple[dict[str, pd.Series], dict[str, pd.Series]]:
    """Each series before ``start`` (the main span) and from it on (the holdout; empty without one)."""
    if start is None:
        return returns, {}
    return ({name: s[s.index < start] for name, s in returns.items()},
            {name: s[s.index >= start] for name, s in returns.items()})


def seed_summary(metrics: dict[str, dict[str, float]], seeds: dict[int, str]) -> dict[str, float]:
    """Out-of-sample Sharpe of each seed's walk-forward (``seeds``: seed -> strategy name) and their mean, sample
    standard deviation (0 for one seed), min and max."""
    sharpes = np.array([metrics[name]["sharpe"] for name in seeds.values()], dtype=np.float64)
    return {"n": float(sharpes.size), **{f"sharpe.{seed}": float(v) for seed, v in zip(seeds, sharpes, strict=True)},
            "sharpe_mean": float(sharpes.mean()), "sharpe_sd": float(sharpes.std(ddof=1)) if sharpes.size > 1 else 0.0,
            "sharpe_min": float(sharpes.min()), "sharpe_max": float(sharpes.max())}


def flat_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{"<strategy>.<metric>": value}`` of the finite values."""
    return {f"{name}.{key}": float(value) for name, m in metrics.items() for key, value in m.items()
            if np.isfinite(value)}


def report_notes(params: Params, symbols: list[str], windows: list[Window], timestamps: pd.DatetimeIndex,
                 seeds: list[int], holdout: pd.Timestamp | None = None, index_name: str | None = None) -> list[str]:
    """The report's notes: universe, walk-forward windows (dated by ``timestamps``), seeds, ablations, the
    holdout (from ``holdout``), the benchmarks (``index_name``: the price index's column), costs and financing."""
    wf = params.backtest.walk_forward
    others = ", ".join(f"agent_seed_{seed}" for seed in seeds[1:])
    notes = [f"Universe: {', '.join(symbols)} ({params.data.source}).",
             f"agent: walk-forward, {len(windows)} {wf.scheme} windows of "
             f"{wf.test_years} test year(s), agents refitted on each window's past "
             f"({', '.join(w.describe(timestamps) for w in windows)}), seed {seeds[0]}. The registered policy is "
             f"the same recipe fitted with seed {seeds[0]} on the latest {wf.train_years} year(s) (the live fit), "
             "which these figures speak for."
             + (f" {others}: the same walk-forward with the other seeds (their spread is the seeds' line below)."
                if others else ""),
             "agent_fixed: the rl_train policy (fitted once on the RL window, never refitted); not the one registered "
             "(that is the live fit above).",
             *([f"agent_no_forecast (ablation: does the predictor help?): the agent's recipe, seed {seeds[0]}, walked "
                "forward on the same windows and bars with the predictor's forecasts taken out of the agents' "
                "observation. Never registered; not a ledger trial (it is no candidate: no gate or choice reads it) "
                "and so reports the PSR only."] if params.backtest.no_forecast_ablation else []),
             "equal_weight_risk_managed and forecast_risk_managed: 1/N and the forecast's top quartile proposed to the "
             "agent's risk manager from the same warm-up: what the risk overlay makes of them without an agent. Each "
             "is one book whose risk state (breaker, peak, stops, last weights) runs across the windows, as the "
             "agent's does: each refitted policy takes over the book and risk state its predecessor left.",
             "Primary benchmark: equal_weight_daily, 1/N on the same universe and the same (dividend-adjusted) "
             "prices; the gate's must_beat_benchmark compares with it."
             + (f" {index_name} is a price index (dividends excluded): it understates the index's total return by "
                "its dividend yield, and is shown for reference and for beta/alpha only." if index_name else "")]
    if holdout is not None:
        notes.append(f"Holdout: the bars from {holdout.date()} on (backtest.holdout_years = "
                     f"{params.backtest.holdout_years:g}) are left out of the main table and reported apart. The "
                     "books run through them unbroken (the same walk-forward fits). No choice uses them but "
                     "register's last check (register.min_holdout_sharpe).")
    notes.append(f"Costs: {params.costs.cost_bps} bps + slippage {params.costs.slippage_bps} bps per unit "
                 "turnover; decisions at the close of bar t are filled at the close of bar t+1. Cash earns "
                 f"{params.backtest.cash_rate:.2%} a year (negative cash pays it), shorts pay "
                 f"{params.costs.borrow_bps:g} bps a year; risk.no_trade_band = {params.risk.no_trade_band:g}.")
    return notes
