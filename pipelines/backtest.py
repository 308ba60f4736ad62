"""Stage backtest: the agent out of sample against the forecast strategy and the benchmarks, same costs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import mlflow
from tradepipe.agents.policy import TradingPolicy
from tradepipe.backtest.engine import Execution, execute
from tradepipe.backtest.metrics import performance_metrics
from tradepipe.backtest.report import equity_plot_csv, write_report
from tradepipe.backtest.strategies import equal_weight, month_starts, periodic_rebalance, top_k_forecast
from tradepipe.config import Params
from tradepipe.data.schema import to_wide
from tradepipe.data.store import read_json, write_parquet
from tradepipe.stage import StageError, run_stage

BARS = Path("data/raw/bars.parquet")
BENCHMARK = Path("data/raw/benchmark.parquet")
FEATURES = Path("data/features/features.parquet")
PREDICTIONS = Path("data/predictions/predictions.parquet")
AGENT = Path("models/agent")
BEST = Path("models/tune/best_config.json")
REPORT = Path("reports/backtest/report.html")
RETURNS = Path("data/backtest/returns.parquet")
PLOT = Path("plots/equity.csv")


def backtest(params: Params, root: Path) -> dict[str, float]:
    policy = TradingPolicy.load(root / AGENT)
    bars = pd.read_parquet(root / BARS)
    market = policy.market_from_tables(bars, pd.read_parquet(root / FEATURES), pd.read_parquet(root / PREDICTIONS))
    test = market.window(pd.Timestamp(params.split.val_end, tz="UTC") + pd.Timedelta(days=1))
    if len(test.timestamps) < 3:
        raise StageError(f"no test bars after split.val_end={params.split.val_end}; extend data.end")
    n_bars, n_assets = test.returns.shape
    cost = policy.spec.cost_rate
    ew = equal_weight(n_bars, n_assets)
    runs: dict[str, Execution] = {
        "agent": execute(policy.targets(test), test.returns, cost),
        "forecast_top_quartile": execute(top_k_forecast(test.predictions, max(1, n_assets // 4)), test.returns, cost),
        "equal_weight_daily": execute(ew, test.returns, cost),
        "equal_weight_monthly": execute(periodic_rebalance(ew, test.returns, month_starts(test.timestamps)),
                                        test.returns, cost),
    }
    # From the first fill on (bar 1): bar 0 only decides.
    index = test.timestamps[1:]
    returns = {name: pd.Series(run.net_returns[1:], index=index, name=name) for name, run in runs.items()}
    bench_bars = pd.read_parquet(root / BENCHMARK)
    index_returns = None
    if not bench_bars.empty:
        close = to_wide(bench_bars).iloc[:, 0]
        index_returns = close.pct_change(fill_method=None).reindex(index).fillna(0.0)
        returns[f"buy_and_hold_{close.name}"] = index_returns.rename(f"buy_and_hold_{close.name}")

    n_trials = int(read_json(root / BEST)["n_trials"]) + 1  # predictor configurations tried + the agent
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
    write_report(root / REPORT, returns=returns, metrics=metrics, weights=weights,
                 costs=pd.Series(agent.costs[1:], index=index),
                 title=f"tradepipe out-of-sample backtest {index[0].date()} to {index[-1].date()}",
                 notes=[f"Universe: {', '.join(test.symbols)} ({params.data.source}).",
                        f"Costs: {params.costs.cost_bps} bps + slippage {params.costs.slippage_bps} bps per unit "
                        "turnover; decisions at the close of bar t are filled at the close of bar t+1.",
                        f"Deflated Sharpe ratio counts {n_trials} trials."])
    equity_plot_csv(returns, root / PLOT)
    write_parquet(pd.DataFrame(returns).rename_axis("timestamp").reset_index(), root / RETURNS)
    mlflow.log_artifact(str(root / REPORT), "backtest")
    return {f"{name}.{key}": float(value) for name, m in metrics.items() for key, value in m.items()
            if np.isfinite(value)}


if __name__ == "__main__":
    run_stage("backtest", backtest, sections=("backtest", "costs", "split"))
