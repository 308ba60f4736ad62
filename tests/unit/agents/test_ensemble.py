"""Ensembles: selection and blending by validation Sharpe; a blend proposes the weighted mean of its agents' books."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO, SAC, TD3

from tradepipe.agents.ensemble import combine
from tradepipe.agents.policy import PolicySpec, agent_actor, deterministic_actions
from tradepipe.envs.portfolio import PortfolioEnv, action_to_book


def test_select_takes_the_best_validation_sharpe() -> None:
    blend, reason = combine({"sac": 0.4, "td3": 1.1, "ppo": -0.2}, "select")
    assert blend == {"td3": 1.0}
    assert reason.startswith("select: td3") and "sac 0.400" in reason


def test_blend_weights_positive_sharpes_proportionally() -> None:
    blend, reason = combine({"sac": 0.5, "td3": 1.5, "ppo": -0.2}, "blend")
    assert blend == pytest.approx({"sac": 0.25, "td3": 0.75})
    assert "proportional" in reason


def test_blend_falls_back_to_equal_weights() -> None:
    blend, reason = combine({"sac": -0.5, "ppo": -0.1}, "blend")
    assert blend == {"sac": 0.5, "ppo": 0.5}
    assert "equal weights" in reason


def test_no_agents_is_an_error() -> None:
    with pytest.raises(ValueError, match="no agents"):
        combine({}, "select")


def test_blended_actor_is_the_weighted_mean_of_the_books() -> None:
    rng = np.random.default_rng(0)
    env = PortfolioEnv(rng.normal(0, 0.01, (30, 3)), rng.normal(size=(30, 3, 2)))
    agents = {name: PPO("MlpPolicy", env, seed=seed, device="cpu", n_steps=16, batch_size=16)
              for seed, name in enumerate(("a", "b"))}
    obs = np.stack([env.observation_space.sample() for _ in range(5)])
    books = agent_actor(agents, {"a": 0.3, "b": 0.7}, PolicySpec(["x", "y", "z"], 1, 0.0))(obs)
    expected = sum(w * action_to_book(agents[k].predict(obs, deterministic=True)[0]) for k, w in
                   {"a": 0.3, "b": 0.7}.items())
    np.testing.assert_array_equal(books, expected)
    np.testing.assert_allclose(books.sum(axis=1), 1.0)


@pytest.mark.parametrize("algo", [SAC, TD3, PPO])
def test_deterministic_actions_are_predicts_bit_for_bit(algo: type) -> None:
    rng = np.random.default_rng(1)
    env = PortfolioEnv(rng.normal(0, 0.01, (30, 3)), rng.normal(size=(30, 3, 2)))
    kwargs = {"n_steps": 16, "batch_size": 16} if algo is PPO else {"buffer_size": 100}
    agent = algo("MlpPolicy", env, seed=0, device="cpu", **kwargs)
    agent.policy.set_training_mode(True)  # as after learn(): switched to eval mode once
    obs = rng.normal(0.0, 30.0, (7, env.obs_size)).astype(np.float32)  # far out: PPO's actions get clipped
    got = deterministic_actions(agent.policy, obs)
    assert not agent.policy.training
    np.testing.assert_array_equal(got, agent.predict(obs, deterministic=True)[0])
    assert got.dtype == np.float32 and np.abs(got).max() <= 1.0 and np.abs(got).max() > 0.0
