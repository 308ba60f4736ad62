"""Optional RL hyperparameter search: real Ray Tune + Optuna + ASHA training real SB3 agents."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tradepipe.agents.policy import PolicySpec
from tradepipe.agents.training import split_tail
from tradepipe.config import AgentParams, RiskParams, RLParams, RLTuneParams, SearchDim
from tradepipe.core.market import Market
from tradepipe.tuning.agents import tune_agent


def _market(n_bars: int = 320, n_assets: int = 3) -> Market:
    rng = np.random.default_rng(5)
    days = pd.bdate_range("2015-01-01", periods=n_bars, tz="UTC")
    returns = rng.normal(0.0003, 0.01, (n_bars, n_assets))
    features = rng.normal(size=(n_bars, n_assets, 2)).astype(np.float32)
    return Market(days, [f"S{i}" for i in range(n_assets)], returns, features,
                  np.zeros((n_bars, n_assets), np.float32))


def test_search_tries_distinct_configs_and_keeps_the_best_finished_one() -> None:
    market = _market()
    train, val = split_tail(market, 0.25, lookback=1)
    spec = PolicySpec(symbols=market.symbols, lookback=1, cost_rate=0.001, risk=RiskParams(target_vol=None))
    space = {"learning_rate": SearchDim(type="loguniform", low=1e-4, high=1e-2),
             "gamma": SearchDim(type="choice", values=[0.9, 0.99])}
    cfg = RLParams(algos=["ppo"], total_timesteps=256, episode_length=100,
                   ppo=AgentParams(n_steps=32, batch_size=32, n_envs=2),
                   tune=RLTuneParams(num_samples=3, reports=2, cpus=2, search_space=space))

    result = tune_agent("ppo", train, val, spec, cfg, seed=0)

    assert len(result.trials) == 3
    assert len({t["config"]["learning_rate"] for t in result.trials}) == 3          # TPE proposes distinct ones
    assert all(1e-4 <= t["config"]["learning_rate"] <= 1e-2 for t in result.trials)
    assert all(math.isfinite(t["val_sharpe"]) and 1 <= t["reports"] <= 2 for t in result.trials)
    finished = [t for t in result.trials if t["reports"] == 2]
    assert result.best_val_sharpe == max(t["val_sharpe"] for t in finished)
    best = next(t for t in finished if t["val_sharpe"] == result.best_val_sharpe)["config"]
    assert (result.best.learning_rate, result.best.gamma) == (best["learning_rate"], best["gamma"])
    assert (result.best.n_steps, result.best.n_envs) == (32, 2)                        # unsearched ones kept
    tuned = cfg.with_agents({"ppo": result.best.model_dump()})
    assert tuned.ppo == result.best and tuned.sac == cfg.sac
