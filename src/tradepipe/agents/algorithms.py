"""SAC, TD3 and PPO from stable-baselines3, built from params.yaml's rl_train section."""

from __future__ import annotations

from typing import Any

from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv

from tradepipe.config import RLParams
from tradepipe.envs.portfolio import PortfolioEnv

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"sac": SAC, "td3": TD3, "ppo": PPO}


def make_agent(env: PortfolioEnv, params: RLParams, seed: int) -> BaseAlgorithm:
    """An untrained agent of the configured algorithm on ``env`` (seeded, CPU)."""
    cls = ALGORITHMS[params.algo]
    kwargs: dict[str, Any] = {"learning_rate": params.learning_rate, "batch_size": params.batch_size}
    if params.algo in ("sac", "td3"):
        kwargs.update(buffer_size=params.buffer_size, learning_starts=min(1000, params.total_timesteps // 10))
    else:
        kwargs.update(n_steps=max(params.batch_size, 64))
    vec = DummyVecEnv([lambda: env])
    return cls("MlpPolicy", vec, seed=seed, device="cpu", verbose=0, **kwargs)


def load_agent(algo: str, path: str) -> BaseAlgorithm:
    """Load a saved agent of algorithm ``algo`` (no environment attached)."""
    return ALGORITHMS[algo].load(path, device="cpu")
