"""Stage rl_train: an SB3 agent in the portfolio env over the validation window (out-of-sample forecasts)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import Progress

from tradepipe.agents.algorithms import make_agent
from tradepipe.agents.market import build_market
from tradepipe.agents.policy import PolicySpec, TradingPolicy, rollout
from tradepipe.backtest.engine import execute
from tradepipe.config import Params
from tradepipe.features import feature_columns
from tradepipe.models.predictor import Predictor
from tradepipe.stage import StageError, run_stage

BARS = Path("data/raw/bars.parquet")
FEATURES = Path("data/features/features.parquet")
PREDICTIONS = Path("data/predictions/predictions.parquet")
PREDICTOR = Path("models/predictor")
AGENT = Path("models/agent")
EPISODE = 252


def _sharpe(returns: np.ndarray) -> float:
    return float(np.mean(returns) / np.std(returns, ddof=1) * np.sqrt(252)) if np.std(returns) > 0 else 0.0


def rl_train(params: Params, root: Path) -> dict[str, float]:
    predictor = Predictor.load(root / PREDICTOR)
    market = build_market(pd.read_parquet(root / BARS), pd.read_parquet(root / FEATURES),
                          pd.read_parquet(root / PREDICTIONS), feature_columns(params.features),
                          predictor.scaler, predictor.y_scale)
    # Train where the predictor's forecasts are out-of-sample and the backtest has not begun.
    window = market.window(pd.Timestamp(params.split.train_end, tz="UTC"),
                           pd.Timestamp(params.split.val_end, tz="UTC") + pd.Timedelta(days=1))
    cfg = params.rl_train
    if len(window.timestamps) <= cfg.lookback + 2:
        raise StageError(f"the RL window ({params.split.train_end} .. {params.split.val_end}) holds "
                         f"{len(window.timestamps)} bars; widen split dates")
    spec = PolicySpec(algo=cfg.algo, symbols=window.symbols, lookback=cfg.lookback, cost_rate=params.costs.rate)
    episode = min(EPISODE, len(window.timestamps) - cfg.lookback)
    agent = make_agent(spec.env(window, episode_length=episode), cfg, params.seed)
    start = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task(f"{cfg.algo} training", total=cfg.total_timesteps)
        chunk = max(1, cfg.total_timesteps // 20)
        done = 0
        while done < cfg.total_timesteps:
            step = min(chunk, cfg.total_timesteps - done)
            agent.learn(step, reset_num_timesteps=done == 0)
            done += step
            progress.update(task, completed=done)
    elapsed = time.perf_counter() - start
    TradingPolicy(agent, spec, predictor).save(root / AGENT)

    targets = rollout(agent, spec.env(window))
    agent_ret = execute(targets, window.returns, spec.cost_rate).net_returns[2:]
    n = len(window.symbols)
    equal_ret = execute(np.full_like(targets, 1.0 / n), window.returns, spec.cost_rate).net_returns[2:]
    return {"timesteps": float(cfg.total_timesteps), "train_steps_per_s": cfg.total_timesteps / elapsed,
            "window_sharpe": _sharpe(agent_ret), "window_sharpe_equal_weight": _sharpe(equal_ret),
            "window_bars": float(len(window.timestamps))}


if __name__ == "__main__":
    run_stage("rl_train", rl_train, sections=("rl_train", "costs", "split"))
