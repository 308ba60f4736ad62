"""Stage backtest: the walk-forward agent out of sample against the forecast strategy and the benchmarks.

Per walk-forward window the agents are refitted on that window's past only (the rl_train library code) and
traded on its test slice; the stitched out-of-sample targets, the forecast strategy and every benchmark run
through the same execution engine and costs over the same bars.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import mlflow
from tradepipe.agents.market import build_market
from tradepipe.agents.policy import PolicySpec, TradingPolicy
from tradepipe.backtest.agent_walk_forward import agent_walk_forward
from tradepipe.backtest.evaluation import (
    benchmark_runs,
    buy_and_hold,
    fill_returns,
    fills,
    flat_metrics,
    report_notes,
    strategy_metrics,
    trial_count,
)
from tradepipe.backtest.report import equity_plot_csv, report_figures, write_report
from tradepipe.config import Params
from tradepipe.core.execution import execute
from tradepipe.core.io import read_json, write_parquet
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


def _log_fit(k: int, metrics: dict[str, float]) -> None:
    mlflow.log_metrics({f"walk_forward.{name}": value for name, value in metrics.items()}, step=k)


def backtest(params: Params, root: Path) -> dict[str, float]:
    # The walk-forward windows and agent_fixed see observations scaled as models/predictor (rl_train's policy
    # bundles it); the live policy is served with the last walk-forward refit, so it trains on that one's scaling.
    predictor, live_predictor = Predictor.load(root / PREDICTOR), Predictor.load(root / LIVE_PREDICTOR)
    bars, features, predictions = (pd.read_parquet(root / path) for path in (BARS, FEATURES, PREDICTIONS))
    market, live_market = (build_market(bars, features, predictions, feature_columns(params.features), p.scaler,
                                        p.forecast_scale) for p in (predictor, live_predictor))
    spec = PolicySpec.from_params(market.symbols, params)
    tuning = read_json(root / AGENT_TUNING)  # the rl_train stage's hyperparameters (tuned or as configured)
    try:
        wf = agent_walk_forward(market, spec, predictor, params, params.rl_train.with_agents(tuning["hyperparameters"]),
                                live_market, live_predictor, on_fit=_log_fit)
    except ValueError as exc:
        raise StageError(str(exc)) from exc
    mlflow.log_dict({"windows": wf.fits}, "backtest/walk_forward.json")
    wf.live_policy.save(root / LIVE_AGENT)
    first = wf.windows[0].test.start
    test = market.take(slice(first, None))
    if len(test.timestamps) < 3:
        raise StageError(f"no test bars after split.val_end={params.split.val_end}; extend data.end")
    runs = {"agent": execute(wf.targets[first:], test.returns, spec.cost_rate),
            "agent_fixed": execute(TradingPolicy.load(root / AGENT).targets(test), test.returns, spec.cost_rate),
            **benchmark_runs(market, first, spec.cost_rate, params.backtest.benchmark_window)}
    returns = fill_returns(runs, test.timestamps)
    index = buy_and_hold(pd.read_parquet(root / BENCHMARK), test.timestamps, spec.cost_rate)
    if index is not None:
        returns[str(index.held.name)] = index.held
    n_trials = trial_count(int(read_json(root / BEST_CONFIG)["n_trials"]), params.rl_train.algos,
                           int(tuning["n_trials"]))
    metrics = strategy_metrics(returns, runs, test.symbols, None if index is None else index.returns,
                               params.backtest, n_trials)
    agent = fills(runs["agent"], test.timestamps[1:], test.symbols)
    figures = report_figures(returns, agent.weights, agent.costs)
    write_report(root / BACKTEST_REPORT, returns=returns, metrics=metrics, figures=figures,
                 title=f"tradepipe out-of-sample backtest {test.timestamps[1].date()} to {test.timestamps[-1].date()}",
                 notes=report_notes(params, test.symbols, wf.windows, market.timestamps, n_trials))
    for name, figure in figures.items():  # the report's interactive figures, as plotly JSON
        mlflow.log_text(figure.to_json(), f"backtest/figures/{name}.json")
    equity_plot_csv(returns, root / EQUITY_PLOT)
    write_parquet(pd.DataFrame(returns).rename_axis("timestamp").reset_index(), root / BACKTEST_RETURNS)
    decisions = pd.DataFrame(wf.targets[first:], index=test.timestamps, columns=test.symbols)
    write_parquet(decisions.rename_axis("timestamp").reset_index(), root / DECISIONS)
    mlflow.log_artifact(str(root / BACKTEST_REPORT), "backtest")
    return {"walk_forward.windows": float(len(wf.windows)), **flat_metrics(metrics)}


if __name__ == "__main__":
    run_stage("backtest", backtest)
