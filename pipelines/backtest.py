"""Stage backtest: the walk-forward agent out of sample against the forecast strategy and the benchmarks.

Per walk-forward window the agents are refitted on that window's past only (the rl_train library code), once per
seed, and traded on its test slice as one stitched book (its risk state carried across the windows); the
out-of-sample targets of each seed, the ablations (the agent without the forecast in its observation, 1/N and the
forecast through the same risk manager), the forecast strategy and every benchmark run through the same execution
engine, costs and financing over the same bars. The last ``backtest.holdout_years`` of those bars are the
holdout: the main table and metrics leave them out, they are reported apart (``holdout.*``, the report's Holdout
table) and only register's last check reads them. The agent's Deflated Sharpe counts the trial ledger of this test span
(``tradepipe.tuning.ledger``): this run's trials (tune, rl_train, the run itself) and those recorded by every
earlier backtest run on the span, read back from MLflow; this run's are recorded on its MLflow run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

import mlflow
from mlflow import MlflowClient
from tradepipe.agents.market import build_market
from tradepipe.agents.policy import PolicySpec, TradingPolicy
from tradepipe.backtest.agent_walk_forward import AgentWalkForward, agent_walk_forward
from tradepipe.backtest.evaluation import (
    IndexHold,
    benchmark_runs,
    buy_and_hold,
    fill_returns,
    fills,
    flat_metrics,
    holdout_start,
    managed_runs,
    report_notes,
    seed_summary,
    split_holdout,
    strategy_metrics,
)
from tradepipe.backtest.report import equity_plot_csv, report_figures, write_report
from tradepipe.config import Params
from tradepipe.core.execution import Execution, Financing, execute
from tradepipe.core.io import read_json, write_parquet
from tradepipe.core.market import Market
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
from tradepipe.runtime.tracking import git_commit
from tradepipe.tuning.ledger import SPAN_TAG, Ledger, Trial, backtest_span, read_ledger, trial_key

LEDGER_PARAMS = ("seed", "data", "split", "features", "rl_train", "risk", "costs", "backtest")
# The ablation without the forecast: reported, never registered, deflated by nothing and no ledger trial (it is not a
# candidate: no gate or choice reads it; a run that adopted it would differ in params, a new pipeline_run trial).
NO_FORECAST_RUN = "agent_no_forecast"
REPORT_ONLY = {"backtest": {"no_forecast_ablation"}}  # params that change no figure of the agent: not in its key


def _log_fit(k: int, metrics: dict[str, float]) -> None:
    mlflow.log_metrics({f"walk_forward.{name}": value for name, value in metrics.items()}, step=k)


def _run_trials(params: Params, root: Path, tuning: dict[str, Any]) -> list[Trial]:
    """The trials behind this run: the predictor's (tune), the agents' (rl_train: tuning trials, each algorithm
    and seed) and the run itself (its params, the tuned configurations, the code; the rl_train ensemble's
    validation Sharpe)."""
    best = read_json(root / BEST_CONFIG)
    if "trials" not in best or "trials" not in tuning:
        raise StageError(f"{BEST_CONFIG} or {AGENT_TUNING} has no trial ledger (written before it existed): "
                         "rerun them with `dvc repro --force tune rl_train`")
    sections = {name: getattr(params, name) for name in LEDGER_PARAMS}
    what = {"params": {name: v.model_dump(mode="json", exclude=REPORT_ONLY.get(name)) if isinstance(v, BaseModel)
                       else v for name, v in sections.items()}, "predictor": best["config"],
            "agents": tuning["hyperparameters"], "git_commit": git_commit(root)}
    run = Trial("pipeline_run", trial_key("pipeline_run", what), float(tuning["ensemble_val_sharpe"]))
    return [*(Trial.from_json(t) for t in [*best["trials"], *tuning["trials"]]), run]


def _ledger(params: Params, root: Path, tuning: dict[str, Any], span: str) -> Ledger:
    """This span's ledger: the trials earlier backtest runs on it recorded, then this run's (recorded now)."""
    active = mlflow.active_run()
    assert active is not None, "the backtest runs inside its stage's MLflow run"
    mine = _run_trials(params, root, tuning)
    ledger = Ledger.merged(read_ledger(MlflowClient(), active.info.experiment_id, span), mine)
    mlflow.set_tag(SPAN_TAG, span)
    mlflow.log_metrics(Ledger(tuple(mine)).mlflow_metrics())
    return ledger


def _holdout_line(holdout: dict[str, dict[str, float]], start: pd.Timestamp | None) -> str:
    if start is None:
        return "No holdout (backtest.holdout_years = 0): register's last check has nothing to read."
    agent, ew, daily = (holdout[name]["sharpe"] for name in ("agent", "equal_weight_risk_managed",
                                                              "equal_weight_daily"))
    return (f"Holdout from {start.date()} (reported apart, used by no choice but register's last check): agent "
            f"Sharpe {agent:.3f}, equal_weight_risk_managed {ew:.3f}, equal_weight_daily {daily:.3f}.")


def _predictor_line(metrics: dict[str, dict[str, float]]) -> list[str]:
    if NO_FORECAST_RUN not in metrics:
        return []
    agent, ablated = metrics["agent"]["sharpe"], metrics[NO_FORECAST_RUN]["sharpe"]
    return [f"Does the predictor help? The agent without the forecast in its observation ({NO_FORECAST_RUN}: the "
            f"same recipe, seed and windows): Sharpe {ablated:.3f} against the agent's {agent:.3f}. One seed: compare "
            "the gap with the seeds' spread above before reading it as the predictor's worth."]


def _belief(ledger: Ledger, metrics: dict[str, dict[str, float]], seeds: dict[str, float], holdout: str) -> list[str]:
    """The report's "How much to believe this" lines."""
    counts = ", ".join(f"{n} {kind}" for kind, n in ledger.counts().items() if n)
    agent, ew = metrics["agent"], metrics["equal_weight_risk_managed"]
    return [f"Trials in the ledger of this test span: N = {ledger.n} ({counts}); measured variance of their "
            f"annualised validation Sharpes {ledger.variance:.4f} (sd {ledger.variance ** 0.5:.3f}).",
            f"Expected best Sharpe of {ledger.n} zero-skill trials, SR0 = {ledger.sr0:.3f} (annualised); the "
            f"agent's Sharpe {agent['sharpe']:.3f} gives a Deflated Sharpe of {agent['dsr']:.3f} "
            f"(PSR against 0: {agent['psr']:.3f}). Strategies without trials report the PSR only.",
            f"Seeds: {int(seeds['n'])}, out-of-sample Sharpe mean {seeds['sharpe_mean']:.3f}, sd "
            f"{seeds['sharpe_sd']:.3f}, min {seeds['sharpe_min']:.3f}, max {seeds['sharpe_max']:.3f}.",
            f"Does the agent add anything beyond the risk overlay? 1/N through the same risk manager: Sharpe "
            f"{ew['sharpe']:.3f} against the agent's {agent['sharpe']:.3f} (seed mean {seeds['sharpe_mean']:.3f}).",
            *_predictor_line(metrics),
            holdout,
            "The test years also chose nothing here, but every earlier run on them is in the ledger above: "
            "rerunning until the figures look good raises N and SR0."]


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
    try:
        start = holdout_start(test.timestamps[1:], params.backtest.holdout_years)
    except ValueError as exc:
        raise StageError(f"params.yaml {exc}") from exc
    cfg = params.backtest
    seeds = {seed: "agent" if i == 0 else f"agent_seed_{seed}" for i, seed in enumerate(wf.seed_targets)}
    runs, returns, index = _runs(params, root, market, spec, wf, seeds)
    ledger = _ledger(params, root, tuning, backtest_span(market.timestamps, market.symbols, params.split.val_end))
    main, held = split_holdout(returns, start)
    index_returns = None if index is None else index.returns
    metrics = strategy_metrics(main, runs, test.symbols, index_returns, cfg, ledger.n, ledger.variance ** 0.5,
                               [*seeds.values(), "agent_fixed"], fill_index=test.timestamps[1:])
    holdout = strategy_metrics(held, runs, test.symbols, index_returns, cfg, 1, 0.0, [],
                               fill_index=test.timestamps[1:]) if held else {}
    spread = seed_summary(metrics, seeds)
    notes = report_notes(params, test.symbols, wf.windows, market.timestamps, list(wf.seed_targets), start,
                         None if index is None else str(index.held.name))
    _write_outputs(root, market, returns, metrics, holdout, runs, wf,
                   _belief(ledger, metrics, spread, _holdout_line(holdout, start)), notes)
    return {"walk_forward.windows": float(len(wf.windows)), **flat_metrics(metrics),
            **{f"holdout.{k}": v for k, v in flat_metrics(holdout).items()},
            "holdout.bars": float(len(held["agent"])) if held else 0.0,
            **{f"ledger.{k}": v for k, v in ledger.summary().items()}, **{f"seeds.{k}": v for k, v in spread.items()}}


def _runs(params: Params, root: Path, market: Market, spec: PolicySpec, wf: AgentWalkForward, seeds: dict[int, str]
          ) -> tuple[dict[str, Execution], dict[str, pd.Series], IndexHold | None]:
    """Every strategy executed on the test bars with the same costs and financing: each seed's walk-forward,
    agent_fixed, the ablations and the benchmarks; their returns from the first fill on (the index's too)."""
    cfg, first = params.backtest, wf.windows[0].test.start
    test = market.take(slice(first, None))
    financing = Financing.annual(cfg.cash_rate, params.costs.borrow_bps, cfg.periods_per_year)
    ablated = {} if wf.no_forecast is None else {NO_FORECAST_RUN: wf.no_forecast}
    runs = {**{seeds[seed]: execute(t[first:], test.returns, spec.cost_rate, financing)
               for seed, t in wf.seed_targets.items()},
            "agent_fixed": execute(TradingPolicy.load(root / AGENT).targets(test), test.returns, spec.cost_rate,
                                   financing),
            **{name: execute(t[first:], test.returns, spec.cost_rate, financing) for name, t in ablated.items()},
            **managed_runs(market, first, spec, cfg.walk_forward.warmup_bars, financing),
            **benchmark_runs(market, first, spec.cost_rate, cfg.benchmark_window, financing)}
    returns = fill_returns(runs, test.timestamps)
    index = buy_and_hold(pd.read_parquet(root / BENCHMARK), test.timestamps, spec.cost_rate, financing)
    if index is not None:
        returns[str(index.held.name)] = index.held
    return runs, returns, index


def _write_outputs(root: Path, market: Market, returns: dict[str, pd.Series], metrics: dict[str, dict[str, float]],
                   holdout: dict[str, dict[str, float]], runs: dict[str, Execution], wf: AgentWalkForward,
                   belief: list[str], notes: list[str]) -> None:
    """The report (and its figures in MLflow), the equity plot, returns and the agent's decisions."""
    first = wf.windows[0].test.start
    test = market.take(slice(first, None))
    agent = fills(runs["agent"], test.timestamps[1:], test.symbols)
    figures = report_figures(returns, agent.weights, agent.costs)
    text = "" if not holdout else (
        "The last bars of the test span, left out of the Metrics table above and used by no choice but register's "
        "last check (register.min_holdout_sharpe); each strategy's book runs into them unbroken.")
    write_report(root / BACKTEST_REPORT, returns=returns, metrics=metrics, figures=figures, belief=belief,
                 title=f"tradepipe out-of-sample backtest {test.timestamps[1].date()} to {test.timestamps[-1].date()}",
                 notes=notes, holdout=holdout, holdout_text=text)
    for name, figure in figures.items():  # the report's interactive figures, as plotly JSON
        mlflow.log_text(figure.to_json(), f"backtest/figures/{name}.json")
    equity_plot_csv(returns, root / EQUITY_PLOT)
    write_parquet(pd.DataFrame(returns).rename_axis("timestamp").reset_index(), root / BACKTEST_RETURNS)
    decisions = pd.DataFrame(wf.targets[first:], index=test.timestamps, columns=test.symbols)
    write_parquet(decisions.rename_axis("timestamp").reset_index(), root / DECISIONS)
    mlflow.log_artifact(str(root / BACKTEST_REPORT), "backtest")


if __name__ == "__main__":
    run_stage("backtest", backtest)
