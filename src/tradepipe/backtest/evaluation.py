"""The out-of-sample comparison: benchmark runs, risk-managed ablations, buy-and-hold of the index, metrics (the
Deflated Sharpe for the strategies the trials selected), the seeds' spread and notes.

Every strategy runs through the same execution engine and costs over the same test bars; results count from
the first fill on (bar 1: bar 0 only decides).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from tradepipe.agents.policy import PolicySpec, rollout
from tradepipe.backtest.benchmarks import Method, MVObjective, trailing_allocation
from tradepipe.backtest.strategies import equal_weight, month_starts, periodic_rebalance, top_k_forecast
from tradepipe.backtest.walk_forward import Policy, Window, walk_forward_targets
from tradepipe.config import BacktestParams, Params
from tradepipe.core.execution import Execution, execute
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


@dataclass(frozen=True)
class ManagedSchedule:
    """A fixed schedule of books proposed to the risk manager bar by bar, through the agent's own ``rollout``
    (same env, same risk rules, same fills): what the risk overlay alone makes of a strategy with no agent."""

    spec: PolicySpec
    books: Callable[[Market], Array]  # asset weights (T, N) proposed at each bar of a market; the rest is cash

    def targets(self, market: Market) -> Array:
        books, start = self.books(market), self.spec.lookback - 1
        proposed = iter(np.concatenate([books, 1.0 - books.sum(axis=1, keepdims=True)], axis=1)[start:])
        return rollout(lambda obs: next(proposed)[None], self.spec.env(market), self.spec.risk_manager(market), start)


def managed_runs(market: Market, windows: list[Window], spec: PolicySpec, warmup_bars: int) -> dict[str, Execution]:
    """Ablations: 1/N and the forecast's top quartile traded through the agent's risk manager, rolled out per
    walk-forward window exactly as the agent is (from ``warmup_bars`` before each slice, a fresh risk state), and
    executed on the same test bars."""
    first = windows[0].test.start
    test = market.take(slice(first, None))
    quartile = max(1, len(market.symbols) // 4)
    schedules: dict[str, Callable[[Market], Array]] = {
        "equal_weight_risk_managed": lambda m: equal_weight(len(m.timestamps), len(m.symbols)),
        "forecast_risk_managed": lambda m: top_k_forecast(m.predictions, quartile)}
    return {name: execute(walk_forward_targets(market, windows, _unfitted(ManagedSchedule(spec, books)),
                                               warmup_bars)[first:], test.returns, spec.cost_rate)
            for name, books in schedules.items()}


def _unfitted(policy: Policy) -> Callable[[Market, Window], Policy]:
    """A walk-forward "fit" that learns nothing: the same policy in every window."""
    return lambda _train, _window: policy


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


def strategy_metrics(returns: dict[str, pd.Series], runs: dict[str, Execution], symbols: list[str],
                     benchmark: pd.Series | None, cfg: BacktestParams, n_trials: int, trials_sharpe_std: float,
                     deflated: Iterable[str]) -> dict[str, dict[str, float]]:
    """``performance_metrics`` of each return series; those of ``runs`` also get turnover, costs and weights.

    The strategies in ``deflated`` (the ones the ledger's trials selected) get the Deflated Sharpe ratio against
    ``n_trials`` trials whose annualised Sharpes spread by ``trials_sharpe_std``; the others had no trials and
    report the Probabilistic Sharpe ratio (against 0) only.
    """
    chosen = set(deflated)
    metrics: dict[str, dict[str, float]] = {}
    for name, series in returns.items():
        run = runs.get(name)
        extra = {} if run is None else fills(run, series.index, symbols)._asdict()
        m = performance_metrics(series, benchmark=benchmark, periods_per_year=cfg.periods_per_year,
                                risk_free_rate=cfg.risk_free_rate, n_trials=n_trials,
                                trials_sharpe_std=trials_sharpe_std, **extra)
        metrics[name] = m if name in chosen else {k: v for k, v in m.items() if k != "dsr"}
    return metrics


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
                 seeds: list[int]) -> list[str]:
    """The report's notes: universe, walk-forward windows (dated by ``timestamps``), seeds, ablations, costs."""
    wf = params.backtest.walk_forward
    others = ", ".join(f"agent_seed_{seed}" for seed in seeds[1:])
    return [f"Universe: {', '.join(symbols)} ({params.data.source}).",
            f"agent: walk-forward, {len(windows)} {wf.scheme} windows of "
            f"{wf.test_years} test year(s), agents refitted on each window's past "
            f"({', '.join(w.describe(timestamps) for w in windows)}), seed {seeds[0]}. The registered policy is "
            f"the same recipe fitted with seed {seeds[0]} on the latest {wf.train_years} year(s) (the live fit), "
            "which these figures speak for."
            + (f" {others}: the same walk-forward with the other seeds (their spread is the seeds' line below)."
               if others else ""),
            "agent_fixed: the rl_train policy (fitted once on the RL window, never refitted); not the one registered.",
            "equal_weight_risk_managed and forecast_risk_managed: 1/N and the forecast's top quartile proposed to the "
            "agent's risk manager in the same windows: what the risk overlay makes of them without an agent.",
            f"Costs: {params.costs.cost_bps} bps + slippage {params.costs.slippage_bps} bps per unit "
            "turnover; decisions at the close of bar t are filled at the close of bar t+1."]
