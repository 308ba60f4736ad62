"""Stage rl_train: SB3 agents in the risk-managed portfolio env over the validation window, then an ensemble.

The window (split.train_end .. split.val_end, where the predictor's forecasts are out of sample) is cut in
two: agents train on its first part and are scored on the last ``validation_fraction`` (chronologically
after, no overlap); the ensemble selects the best or blends them by that validation Sharpe.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import Progress
from stable_baselines3.common.base_class import BaseAlgorithm

import mlflow
from tradepipe.agents.algorithms import make_agent
from tradepipe.agents.ensemble import combine
from tradepipe.agents.market import Market, build_market
from tradepipe.agents.policy import Actor, PolicySpec, TradingPolicy, agent_actor, rollout
from tradepipe.backtest.engine import execute
from tradepipe.backtest.metrics import sharpe_ratio
from tradepipe.config import Algo, Params
from tradepipe.features import feature_columns
from tradepipe.models.predictor import Predictor
from tradepipe.stage import StageError, run_stage

BARS = Path("data/raw/bars.parquet")
FEATURES = Path("data/features/features.parquet")
PREDICTIONS = Path("data/predictions/predictions.parquet")
PREDICTOR = Path("models/predictor")
AGENT = Path("models/agent")


def _sharpe(targets: np.ndarray, market: Market, spec: PolicySpec) -> float:
    """Sharpe of ``targets`` executed on ``market`` from the first fill on."""
    return sharpe_ratio(pd.Series(execute(targets, market.returns, spec.cost_rate).net_returns[spec.lookback:]))


def _validate(act: Actor, market: Market, spec: PolicySpec) -> float:
    return _sharpe(rollout(act, spec.env(market), spec.risk_manager(market)), market, spec)


def _train(algo: Algo, train: Market, spec: PolicySpec, params: Params) -> tuple[BaseAlgorithm, float]:
    """A trained agent and its training speed in env steps per second."""
    cfg = params.rl_train
    episode = min(cfg.episode_length, len(train.timestamps) - spec.lookback)
    agent = make_agent(algo, spec.env(train, episode_length=episode), spec.risk_manager(train), cfg.agent(algo),
                       cfg.total_timesteps, params.seed)
    start = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task(f"{algo} training", total=cfg.total_timesteps)
        chunk = max(1, cfg.total_timesteps // 20)
        while agent.num_timesteps < cfg.total_timesteps:
            agent.learn(min(chunk, cfg.total_timesteps - agent.num_timesteps), reset_num_timesteps=False)
            progress.update(task, completed=agent.num_timesteps)
    return agent, agent.num_timesteps / (time.perf_counter() - start)


def rl_train(params: Params, root: Path) -> dict[str, float]:
    predictor = Predictor.load(root / PREDICTOR)
    market = build_market(pd.read_parquet(root / BARS), pd.read_parquet(root / FEATURES),
                          pd.read_parquet(root / PREDICTIONS), feature_columns(params.features),
                          predictor.scaler, predictor.forecast_scale)
    # Train where the predictor's forecasts are out-of-sample and the backtest has not begun.
    window = market.window(pd.Timestamp(params.split.train_end, tz="UTC"),
                           pd.Timestamp(params.split.val_end, tz="UTC") + pd.Timedelta(days=1))
    cfg = params.rl_train
    n_val = round(len(window.timestamps) * cfg.validation_fraction)
    if min(n_val, len(window.timestamps) - n_val) <= cfg.lookback + 2:
        raise StageError(f"the RL window ({params.split.train_end} .. {params.split.val_end}) holds "
                         f"{len(window.timestamps)} bars, too few to train and validate "
                         f"(rl_train.validation_fraction={cfg.validation_fraction}); widen split dates")
    cut = window.timestamps[-n_val]
    train, val = window.window(window.timestamps[0], cut), window.window(cut)
    spec = PolicySpec(symbols=window.symbols, lookback=cfg.lookback, cost_rate=params.costs.rate,
                      risk=params.risk)

    agents: dict[str, BaseAlgorithm] = {}
    metrics: dict[str, float] = {"train_bars": float(len(train.timestamps)), "val_bars": float(len(val.timestamps))}
    sharpes: dict[str, float] = {}
    for algo in dict.fromkeys(cfg.algos):
        agents[algo], metrics[f"{algo}.train_steps_per_s"] = _train(algo, train, spec, params)
        sharpes[algo] = metrics[f"{algo}.val_sharpe"] = _validate(agent_actor(agents, {algo: 1.0}, spec.long_only),
                                                                  val, spec)
    blend, reason = combine(sharpes, cfg.ensemble)
    policy = TradingPolicy({name: agents[name] for name in blend}, blend, spec, predictor)
    policy.save(root / AGENT)
    mlflow.set_tags({"ensemble.mode": cfg.ensemble, "ensemble.reason": reason,
                     "ensemble.blend": ", ".join(f"{name}={weight:.3f}" for name, weight in blend.items())})

    n = len(val.symbols)
    equal = np.full((len(val.timestamps), n + 1), 1.0 / n)
    equal[:, -1] = 0.0
    return {**metrics, "ensemble.val_sharpe": _sharpe(policy.targets(val), val, spec),
            "equal_weight.val_sharpe": _sharpe(equal[:, :-1], val, spec),
            "equal_weight_risk_managed.val_sharpe": _validate(lambda obs: np.tile(equal[0], (len(obs), 1)), val,
                                                              spec),
            "timesteps": float(cfg.total_timesteps)}


if __name__ == "__main__":
    run_stage("rl_train", rl_train, sections=("rl_train", "risk", "costs", "split"))
