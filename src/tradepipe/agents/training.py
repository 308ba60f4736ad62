"""Train the configured agents on a market window, score each on a held-out tail, combine them into a policy.

Shared by the rl_train stage (one window) and the walk-forward backtest (one fit per window).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from stable_baselines3.common.base_class import BaseAlgorithm

from tradepipe.agents.algorithms import make_agent
from tradepipe.agents.ensemble import combine
from tradepipe.agents.env import BookEnv
from tradepipe.agents.policy import Actor, PolicySpec, TradingPolicy, agent_actor, rollout
from tradepipe.config import Algo, RLParams
from tradepipe.core.execution import execute
from tradepipe.core.market import Market
from tradepipe.core.metrics import sharpe_ratio
from tradepipe.core.progress import progress
from tradepipe.models.predictor import Predictor
from tradepipe.risk import OodReference


@dataclass(frozen=True)
class FittedEnsemble:
    """The combined policy, why it was combined that way, and per-agent figures."""

    policy: TradingPolicy
    reason: str
    metrics: dict[str, float]


def split_tail(window: Market, fraction: float, lookback: int) -> tuple[Market, Market]:
    """``window`` cut into a training head and the last ``fraction`` of its bars (chronologically after)."""
    n_val = round(len(window.timestamps) * fraction)
    if min(n_val, len(window.timestamps) - n_val) <= lookback + 2:
        raise ValueError(f"{len(window.timestamps)} bars are too few to train and validate "
                         f"(validation_fraction={fraction})")
    cut = window.timestamps[-n_val]
    return window.window(window.timestamps[0], cut), window.window(cut)


def executed_sharpe(targets: np.ndarray, market: Market, spec: PolicySpec) -> float:
    """Sharpe of ``targets`` executed on ``market`` from the first fill on."""
    return sharpe_ratio(pd.Series(execute(targets, market.returns, spec.cost_rate).net_returns[spec.lookback:]))


def actor_sharpe(act: Actor, market: Market, spec: PolicySpec) -> float:
    """Sharpe of ``act`` traded through the risk manager on ``market``."""
    return executed_sharpe(rollout(act, spec.env(market), spec.risk_manager(market)), market, spec)


def training_env(train: Market, spec: PolicySpec, cfg: RLParams) -> BookEnv:
    """The env agents train on: ``spec``'s over ``train``, episodes of ``cfg.episode_length`` (at most the
    data), rewarded with ``cfg.reward`` and ``cfg.reward_params``."""
    episode = min(cfg.episode_length, len(train.timestamps) - spec.lookback)
    return spec.env(train, episode_length=episode, reward=cfg.reward, reward_params=cfg.reward_params)


def train_agent(algo: Algo, train: Market, spec: PolicySpec, cfg: RLParams, seed: int,
                label: str = "") -> tuple[BaseAlgorithm, float]:
    """An agent trained on ``train`` and its training speed in env steps per second."""
    agent = make_agent(algo, training_env(train, spec, cfg), spec.risk_manager(train), cfg.agent(algo),
                       cfg.total_timesteps, seed)
    start = time.perf_counter()
    with progress(f"{label}{algo} timesteps", cfg.total_timesteps) as tracker:
        chunk = max(1, cfg.total_timesteps // 20)
        while agent.num_timesteps < cfg.total_timesteps:
            agent.learn(min(chunk, cfg.total_timesteps - agent.num_timesteps), reset_num_timesteps=False)
            tracker.update(agent.num_timesteps,
                           note=f"{agent.num_timesteps / (time.perf_counter() - start):.0f} steps/s")
    return agent, agent.num_timesteps / (time.perf_counter() - start)


def fit_ensemble(train: Market, val: Market, spec: PolicySpec, predictor: Predictor, cfg: RLParams, seed: int,
                 label: str = "") -> FittedEnsemble:
    """Each of ``cfg.algos`` trained on ``train``, scored on ``val``, combined per ``cfg.ensemble``."""
    agents: dict[str, BaseAlgorithm] = {}
    metrics: dict[str, float] = {}
    sharpes: dict[str, float] = {}
    for algo in dict.fromkeys(cfg.algos):
        agents[algo], metrics[f"{algo}.train_steps_per_s"] = train_agent(algo, train, spec, cfg, seed, label)
        sharpes[algo] = metrics[f"{algo}.val_sharpe"] = actor_sharpe(
            agent_actor(agents, {algo: 1.0}, spec), val, spec)
    blend, reason = combine(sharpes, cfg.ensemble)
    policy = TradingPolicy({name: agents[name] for name in blend}, blend, spec, predictor,
                           OodReference.fit(train))  # the OOD guard's reference: the bars the agents learned on
    metrics["ensemble.val_sharpe"] = executed_sharpe(policy.targets(val), val, spec)
    return FittedEnsemble(policy, reason, metrics)


def equal_weight_sharpes(market: Market, spec: PolicySpec) -> dict[str, float]:
    """Validation Sharpe of 1/N in every asset (no cash), executed directly and traded through the risk manager."""
    n = len(market.symbols)
    equal = np.full((len(market.timestamps), n + 1), 1.0 / n)
    equal[:, -1] = 0.0
    return {"equal_weight.val_sharpe": executed_sharpe(equal[:, :-1], market, spec),
            "equal_weight_risk_managed.val_sharpe": actor_sharpe(lambda obs: np.tile(equal[0], (len(obs), 1)),
                                                                 market, spec)}
