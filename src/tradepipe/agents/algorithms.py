"""SAC, TD3 and PPO from stable-baselines3, built from params.yaml's rl_train section, risk manager in the loop."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise

from tradepipe.agents.env import BookEnv, ManagedVecEnv
from tradepipe.config import AgentParams, Algo
from tradepipe.risk import RiskManager

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"sac": SAC, "td3": TD3, "ppo": PPO}
TD3_NOISE = 0.1  # std of TD3's Gaussian exploration noise, in action units ([-1, 1])


def make_agent(algo: Algo, env: BookEnv, risk: RiskManager, params: AgentParams, total_timesteps: int,
               seed: int) -> BaseAlgorithm:
    """An untrained, seeded CPU agent on ``params.n_envs`` risk-managed books of ``env``."""
    vec = ManagedVecEnv(env, risk, params.n_envs, seed)
    kwargs: dict[str, Any] = {"learning_rate": params.learning_rate, "batch_size": params.batch_size,
                              "gamma": params.gamma, "policy_kwargs": {"net_arch": list(params.net_arch)}}
    if algo == "ppo":
        kwargs.update(n_steps=params.n_steps)
    else:
        kwargs.update(buffer_size=params.buffer_size, learning_starts=min(1000, total_timesteps // 10))
    if algo == "td3":
        n_actions = vec.action_space.shape[0]  # type: ignore[index]
        kwargs.update(action_noise=NormalActionNoise(np.zeros(n_actions), np.full(n_actions, TD3_NOISE)))
    return ALGORITHMS[algo]("MlpPolicy", vec, seed=seed, device="cpu", verbose=0, **kwargs)


def load_agent(algo: str, path: str) -> BaseAlgorithm:
    """Load a saved agent of algorithm ``algo`` (no environment attached)."""
    return ALGORITHMS[algo].load(path, device="cpu")
