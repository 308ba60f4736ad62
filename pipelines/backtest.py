"""Stage backtest: the walk-forward agent out of sample against the forecast strategy and the benchmarks.

Per walk-forward window the agents are refitted on that window's past only (the rl_train library code) and
traded on its test slice; the stitched out-of-sample targets, the forecast strategy and every benchmark run
through the same execution engine and costs over the same bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import mlflow
from tradepipe.agents.market import build_market
from tradepipe.agents.policy import PolicySpec, TradingPolicy
from tradepipe.agents.training import fit_ensemble, split_tail
from tradepipe.backtest.benchmarks import Method, MVObjective, trailing_allocation
from tradepipe.backtest.report import equity_plot_csv, write_report
from tradepipe.backtest.strategies import equal_weight, month_starts, periodic_rebalance, top_k_forecast
from tradepipe.backtest.walk_forward import Window, live_window, walk_forward_targets, walk_forward_windows
from tradepipe.config import Params, RLParams
from tradepipe.core.execution import Execution, execute
from tradepipe.core.io import read_json, write_parquet
from tradepipe.core.market import Market
from tradepipe.core.metrics import performance_metrics
from tradepipe.core.schema import to_wide
from tradepipe.features import feature_columns
from tradepipe.models.predictor import Predictor
from tradepipe.paths import (
    AGENT,
    AGENT_TUNING,
    BACKTEST_REPORT,
    BACKTEST_RETURNS,
    BARS,
    BENCHMARK,
    BEST_CONFIG,
    DECISIONS,
    EQUITY_PLOT,
    FEATURES,
    LIVE_AGENT,
    LIVE_PREDICTOR,
    PREDICTIONS,
    PREDICTOR,
)
from tradepipe.runtime.stage import StageError, run_stage


def _agent_targets(market: Market, spec: PolicySpec, predictor: Predictor, params: Params, rl: RLParams,
                   live_market: Market, live_predictor: Predictor) -> tuple[np.ndarray, list[Window], TradingPolicy]:
    """Walk-forward targets of the agent ensemble (hyperparameters ``rl``) over ``market`` (zero before the first
    test slice), and the same procedure fitted on the live window (the latest history) of ``live_market``: the
    policy to deploy, bundling ``live_predictor`` (the one ``live_market``'s observations are scaled by)."""
    cfg = params.backtest.walk_forward
    history_start = pd.Timestamp(params.split.train_end, tz="UTC")
    try:
        windows = walk_forward_windows(market.timestamps, pd.Timestamp(params.split.val_end, tz="UTC")
                                       + pd.Timedelta(days=1), cfg,
                                       purge=params.features.label_horizon + params.split.embargo,
                                       history_start=history_start)
    except ValueError as exc:
        raise StageError(f"params.yaml backtest.walk_forward: {exc}") from exc
    log: list[dict[str, object]] = []

    def fit(train: Market, window: Window, bundled: Predictor = predictor) -> TradingPolicy:
        k = len(log)
        span = window.describe(market.timestamps)
        try:
            head, val = split_tail(train, rl.validation_fraction, rl.lookback)
        except ValueError as exc:
            raise StageError(f"walk-forward window {span}: {exc}; lengthen "
                             "backtest.walk_forward.train_years in params.yaml") from exc
        fitted = fit_ensemble(head, val, spec, bundled, rl, params.seed, label=f"window {k + 1}/{len(windows) + 1} ")
        mlflow.log_metrics({f"walk_forward.{name}": value for name, value in fitted.metrics.items()}, step=k)
        log.append({"window": k + 1, "span": span, "reason": fitted.reason, "blend": fitted.policy.blend})
        return fitted.policy

    targets = walk_forward_targets(market, windows, fit, cfg.warmup_bars)
    live = live_window(market.timestamps, cfg, history_start)
    live_policy = fit(live_market.take(live.train), live, live_predictor)
    mlflow.log_dict({"windows": log}, "backtest/walk_forward.json")
    return targets, windows, live_policy


def backtest(params: Params, root: Path) -> dict[str, float]:
    # The walk-forward windows and agent_fixed see observations scaled as models/predictor (rl_train's policy
    # bundles it); the live policy is served with the last walk-forward refit, so it trains on that one's scaling.
    predictor, live_predictor = Predictor.load(root / PREDICTOR), Predictor.load(root / LIVE_PREDICTOR)
    bars = pd.read_parquet(root / BARS)
    features, predictions = pd.read_parquet(root / FEATURES), pd.read_parquet(root / PREDICTIONS)
    market, live_market = (build_market(bars, features, predictions, feature_columns(params.features), p.scaler,
                                        p.forecast_scale) for p in (predictor, live_predictor))
    spec = PolicySpec.from_params(market.symbols, params)
    tuning = read_json(root / AGENT_TUNING)  # the rl_train stage's hyperparameters (tuned or as configured)
    targets, windows, live_policy = _agent_targets(market, spec, predictor, params,
                                                   params.rl_train.with_agents(tuning["hyperparameters"]),
                                                   live_market, live_predictor)
    live_policy.save(root / LIVE_AGENT)
    first = windows[0].test.start
    test = market.take(slice(first, None))
    if len(test.timestamps) < 3:
        raise StageError(f"no test bars after split.val_end={params.split.val_end}; extend data.end")
    n_bars, n_assets = test.returns.shape
    cost = spec.cost_rate
    ew = equal_weight(n_bars, n_assets)
    runs: dict[str, Execution] = {
        "agent": execute(targets[first:], test.returns, cost),
        "agent_fixed": execute(TradingPolicy.load(root / AGENT).targets(test), test.returns, cost),
        "forecast_top_quartile": execute(top_k_forecast(test.predictions, max(1, n_assets // 4)), test.returns, cost),
        "equal_weight_daily": execute(ew, test.returns, cost),
        "equal_weight_monthly": execute(periodic_rebalance(ew, test.returns, month_starts(test.timestamps)),
                                        test.returns, cost),
    }
    # Allocations refitted monthly on the trailing window (it starts before the test, on data already known).
    window = params.backtest.benchmark_window
    history = market.take(slice(max(0, first - window), None))
    months = month_starts(history.timestamps)
    refitted: dict[str, tuple[Method, MVObjective]] = {
        "inverse_vol_monthly": ("inverse_vol", "min_variance"),
        "min_variance_monthly": ("mean_variance", "min_variance"),
        "max_sharpe_monthly": ("mean_variance", "max_sharpe"),
        "hrp_monthly": ("hrp", "min_variance")}
    for name, (method, objective) in refitted.items():
        allocation = trailing_allocation(history.returns, months, method, window, min_periods=min(window, 63),
                                         mv_objective=objective)
        runs[name] = execute(allocation[-n_bars:], test.returns, cost)
    # From the first fill on (bar 1): bar 0 only decides.
    index = test.timestamps[1:]
    returns = {name: pd.Series(run.net_returns[1:], index=index, name=name) for name, run in runs.items()}
    bench_bars = pd.read_parquet(root / BENCHMARK)
    index_returns = None
    if not bench_bars.empty:
        close = to_wide(bench_bars).iloc[:, 0]
        index_returns = close.pct_change(fill_method=None).reindex(index).fillna(0.0)
        # Bought like every strategy: decided at bar 0, filled (paying costs) at the close of bar 1, then held.
        held = execute(np.ones((n_bars, 1)), index_returns.reindex(test.timestamps).fillna(0.0).to_numpy()[:, None],
                       cost)
        returns[f"buy_and_hold_{close.name}"] = pd.Series(held.net_returns[1:], index=index,
                                                          name=f"buy_and_hold_{close.name}")

    # Trials behind the agent's selection: predictor configurations tuned + agent algorithms compared + agent
    # hyperparameter trials (rl_train.tune).
    n_trials = (int(read_json(root / BEST_CONFIG)["n_trials"]) + len(set(params.rl_train.algos))
                + int(tuning["n_trials"]))
    cfg = params.backtest
    metrics: dict[str, dict[str, float]] = {}
    for name, series in returns.items():
        run = runs.get(name)
        extra = {} if run is None else {
            "turnover": pd.Series(run.turnover[1:], index=index), "costs": pd.Series(run.costs[1:], index=index),
            "weights": pd.DataFrame(run.weights[1:], index=index, columns=test.symbols)}
        metrics[name] = performance_metrics(series, benchmark=index_returns, periods_per_year=cfg.periods_per_year,
                                            risk_free_rate=cfg.risk_free_rate, n_trials=n_trials, **extra)

    agent = runs["agent"]
    weights = pd.DataFrame(agent.weights[1:], index=index, columns=test.symbols)
    write_report(root / BACKTEST_REPORT, returns=returns, metrics=metrics, weights=weights,
                 costs=pd.Series(agent.costs[1:], index=index),
                 title=f"tradepipe out-of-sample backtest {index[0].date()} to {index[-1].date()}",
                 notes=[f"Universe: {', '.join(test.symbols)} ({params.data.source}).",
                        f"agent: walk-forward, {len(windows)} {cfg.walk_forward.scheme} windows of "
                        f"{cfg.walk_forward.test_years} test year(s), agents refitted on each window's past "
                        f"({', '.join(w.describe(market.timestamps) for w in windows)}). agent_fixed: the "
                        "rl_train policy (the one registered), never refitted.",
                        f"Costs: {params.costs.cost_bps} bps + slippage {params.costs.slippage_bps} bps per unit "
                        "turnover; decisions at the close of bar t are filled at the close of bar t+1.",
                        f"Deflated Sharpe ratio counts {n_trials} trials."])
    equity_plot_csv(returns, root / EQUITY_PLOT)
    write_parquet(pd.DataFrame(returns).rename_axis("timestamp").reset_index(), root / BACKTEST_RETURNS)
    decisions = pd.DataFrame(targets[first:], index=test.timestamps, columns=test.symbols)
    write_parquet(decisions.rename_axis("timestamp").reset_index(), root / DECISIONS)
    mlflow.log_artifact(str(root / BACKTEST_REPORT), "backtest")
    return {"walk_forward.windows": float(len(windows)),
            **{f"{name}.{key}": float(value) for name, m in metrics.items() for key, value in m.items()
               if np.isfinite(value)}}


if __name__ == "__main__":
    run_stage("backtest", backtest)
