"""Steps per second of the trading environments on the bundled data (random actions, no agent).

Run: ``python benchmarks/env_throughput.py [--seconds 2] [--n-envs 16]``. Each figure is the best of
three timed runs (the machine may be shared). ManagedVecEnv is the batch agents train on: every step
passes the proposed books through the risk manager (default limits). For the peers' figures measured side by
side (gym-anytrading, FinRL's StockTradingEnv), run ``benchmarks/peers.py``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from tradepipe.agents.env import BookEnv, ManagedVecEnv
from tradepipe.config import RiskParams
from tradepipe.envs.portfolio import PortfolioEnv, PortfolioVecEnv
from tradepipe.registration import demo_market, make_portfolio, make_single_asset
from tradepipe.risk import RiskManager


def single_env_rate(env: PortfolioEnv, seconds: float) -> float:
    """Steps/s of ``env`` on pre-drawn random actions, resetting at episode ends."""
    actions = np.random.default_rng(0).uniform(-1, 1, (4096, *env.action_space.shape)).astype(np.float32)
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        steps += len(actions)
    return steps / (time.perf_counter() - start)


def vec_env_rate(vec: VecEnv, seconds: float) -> float:
    """Environment steps/s (books times batch steps) of ``vec`` on random actions."""
    shape = (256, vec.num_envs, *(vec.action_space.shape or ()))
    actions = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    vec.reset()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for batch in actions:
            vec.step(batch)
        steps += len(actions) * vec.num_envs
    return steps / (time.perf_counter() - start)


def best_of(runs: int, rate: Callable[[], float]) -> float:
    """Best of ``runs`` measurements."""
    return max(rate() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each timed run")
    parser.add_argument("--n-envs", type=int, default=16, help="books in the batched env")
    args = parser.parse_args()
    portfolio = make_portfolio()
    vec = PortfolioVecEnv(make_portfolio(episode_length=252), args.n_envs, seed=0)
    dummy = DummyVecEnv([lambda: make_portfolio(episode_length=252)] * args.n_envs)
    single = make_single_asset()
    returns, features = demo_market("skfolio_sp500")
    managed = ManagedVecEnv(BookEnv(returns, features, episode_length=252), RiskManager(RiskParams(), returns),
                            args.n_envs, seed=0)
    rates = {
        f"PortfolioEnv, {portfolio.n_assets} assets, one env":
            lambda: single_env_rate(portfolio, args.seconds),
        f"PortfolioVecEnv, {args.n_envs} books": lambda: vec_env_rate(vec, args.seconds),
        f"DummyVecEnv of {args.n_envs} PortfolioEnvs (reference)": lambda: vec_env_rate(dummy, args.seconds),
        f"ManagedVecEnv, {args.n_envs} books, default risk": lambda: vec_env_rate(managed, args.seconds),
        "SingleAssetTradingEnv, one env": lambda: single_env_rate(single, args.seconds),
    }
    for label, rate in rates.items():
        print(f"{label:<45} {best_of(3, rate):>12,.0f} steps/s")
    print("peers, measured side by side: python benchmarks/peers.py")


if __name__ == "__main__":
    main()
