"""Trading environments: API checks, exact accounting against the execution engine, rewards, batching."""

from __future__ import annotations

import math
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import tradepipe  # noqa: F401  (registers the environment ids)
from tradepipe.core.execution import execute, rebalance
from tradepipe.envs.portfolio import (
    LOGIT_SCALE,
    PortfolioEnv,
    PortfolioVecEnv,
    action_to_book,
    action_to_weights,
    observation,
)
from tradepipe.envs.rewards import DifferentialSharpe, DrawdownPenalty, LogReturn, make_reward
from tradepipe.envs.single_asset import SingleAssetTradingEnv
from tradepipe.registration import causal_features

T, N, F = 120, 5, 3


def market(seed: int = 0, n_bars: int = T, n_assets: int = N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0005, 0.02, (n_bars, n_assets)), rng.normal(size=(n_bars, n_assets, F))


def portfolio(**kwargs: Any) -> PortfolioEnv:
    return PortfolioEnv(*market(), **kwargs)


def single_asset(**kwargs: Any) -> SingleAssetTradingEnv:
    returns, features = market(n_assets=1)
    return SingleAssetTradingEnv(returns[:, 0], features[:, 0], **kwargs)


def run_episode(env: PortfolioEnv, seed: int) -> tuple[np.ndarray, list[dict], list[float], int]:
    """Random actions until the episode ends: (engine-style targets (T, N), infos, rewards, start)."""
    rng = np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    start, targets, infos, rewards = info["t"], np.zeros((env.n_bars, env.n_assets)), [], []
    done, t = False, start
    while not done:
        action = rng.uniform(-1.5, 1.5, env.action_space.shape).astype(np.float32)
        targets[t] = env.action_weights(action)
        _, reward, terminated, truncated, info = env.step(action)
        infos.append(info)
        rewards.append(reward)
        t, done = info["t"], terminated or truncated
    return targets, infos, rewards, start


def share_ledger(targets: np.ndarray, returns: np.ndarray, cost_rate: float, start: int) -> np.ndarray:
    """Equity from a share-and-cash ledger: at each close, buy/sell shares so that the book holds the targets
    of the equity left after paying ``cost_rate`` on every dollar traded (the cost found by plain iteration)."""
    prices = np.cumprod(1.0 + returns, axis=0)
    cash, shares, equity = 1.0, np.zeros(returns.shape[1]), []
    for t in range(start + 1, len(returns)):
        value, cost = cash + float(shares @ prices[t]), 0.0
        for _ in range(100):
            cost = cost_rate * float(np.abs(targets[t - 1] * (value - cost) - shares * prices[t]).sum())
        orders = targets[t - 1] * (value - cost) / prices[t] - shares
        cash -= float(orders @ prices[t]) + cost_rate * float(np.abs(orders * prices[t]).sum())
        shares = shares + orders
        equity.append(cash + float(shares @ prices[t]))
    return np.array(equity)


# --- API conformance -------------------------------------------------------------------------------

ENVS = {
    "portfolio": lambda: portfolio(),
    "portfolio_long_short_lookback_predictions": lambda: portfolio(
        long_only=False, max_leverage=1.5, lookback=3, episode_length=40, reward="differential_sharpe",
        predictions=np.random.default_rng(1).normal(size=(T, N))),
    "single_asset": lambda: single_asset(reward="drawdown_penalty"),
    "single_asset_long_only": lambda: single_asset(long_only=True, episode_length=30),
}


@pytest.mark.parametrize("name", sorted(ENVS))
def test_gymnasium_check_env_passes(name: str) -> None:
    gym_check_env(ENVS[name](), skip_render_check=True)


@pytest.mark.parametrize("name", ["portfolio", "portfolio_long_short_lookback_predictions", "single_asset"])
def test_sb3_check_env_passes(name: str) -> None:
    sb3_check_env(ENVS[name](), warn=False)


def test_registered_ids_build_with_no_arguments() -> None:
    env = gymnasium.make("tradepipe/Portfolio-v0")
    obs, info = env.reset(seed=0)
    assert isinstance(env.unwrapped, PortfolioEnv) and env.unwrapped.n_assets == 20
    assert obs.shape == (20 * 4 + 21,) and obs.dtype == np.float32
    assert obs[-1] == 1.0 and not obs[-21:-1].any()  # all cash before the first fill
    assert env.action_space.shape == (21,)
    single = gymnasium.make("tradepipe/SingleAsset-v0")
    obs, _ = single.reset(seed=0)
    assert obs.shape == (4 + 2,) and single.action_space.shape == (1,)
    gym_check_env(env.unwrapped, skip_render_check=True)


def test_observation_layout() -> None:
    returns, features = market()
    predictions = np.arange(T * N, dtype=np.float64).reshape(T, N)
    env = PortfolioEnv(returns, features, lookback=2, predictions=predictions)
    obs, info = env.reset()
    assert info["t"] == 1
    np.testing.assert_array_equal(obs[:2 * N * F], features[0:2].reshape(-1).astype(np.float32))
    np.testing.assert_array_equal(obs[2 * N * F:2 * N * F + N], predictions[1].astype(np.float32))
    obs, *_ , info = env.step(np.zeros(N + 1, dtype=np.float32))
    np.testing.assert_array_equal(obs[:2 * N * F], features[1:3].reshape(-1).astype(np.float32))
    np.testing.assert_allclose(obs[-N - 1:], np.full(N + 1, 1.0 / (N + 1)), rtol=1e-6)
    assert info["t"] == 2


def test_one_observation_without_the_env_equals_the_envs() -> None:
    returns, features = market()
    rng = np.random.default_rng(3)
    features = features.copy()
    features[2, 1, 0] = np.nan  # both turn NaN into 0
    predictions = rng.normal(size=(T, N))
    predictions[3, 2] = np.nan
    book = rng.dirichlet(np.ones(N + 1))
    for preds in (predictions, None):
        env = PortfolioEnv(returns, features, lookback=3, predictions=preds)
        for t in (2, 3, T - 1):
            expected = env.observe(t, book)
            got = observation(features, preds, t, 3, book)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, expected)


def test_observations_and_infos_are_not_overwritten_by_later_steps() -> None:
    env = portfolio(predictions=np.random.default_rng(1).normal(size=(T, N)))
    first, _ = env.reset(seed=0)
    kept = [(first, first.copy(), None, None)]
    for action in np.random.default_rng(2).uniform(-1, 1, (5, N + 1)).astype(np.float32):
        obs, *_, info = env.step(action)
        kept.append((obs, obs.copy(), info["weights"], info["weights"].copy()))
    for obs, obs_copy, weights, weights_copy in kept:  # what step returned still holds its values
        np.testing.assert_array_equal(obs, obs_copy)
        if weights is not None:
            np.testing.assert_array_equal(weights, weights_copy)
    assert len({id(obs) for obs, *_ in kept}) == len(kept)


# --- exact accounting ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, {"long_only": False, "max_leverage": 2.0, "cost_rate": 0.01},
                                    {"episode_length": 50, "cost_rate": 0.0}])
def test_equity_replays_the_engine_and_a_share_ledger(kwargs: dict) -> None:
    env = portfolio(**kwargs)
    targets, infos, _, start = run_episode(env, seed=7)
    equity = np.array([info["equity"] for info in infos])
    end = infos[-1]["t"]
    engine = execute(targets, env.returns, env.cost_rate)
    np.testing.assert_allclose(equity, engine.equity[start + 1:end + 1], rtol=0, atol=1e-10)
    np.testing.assert_allclose([i["turnover"] for i in infos], engine.turnover[start + 1:end + 1], atol=1e-12)
    np.testing.assert_allclose([i["cost"] for i in infos], engine.costs[start + 1:end + 1], atol=1e-12)
    np.testing.assert_allclose(np.array([i["weights"] for i in infos]), engine.weights[start + 1:end + 1])
    ledger = share_ledger(targets[:end], env.returns[:end + 1], env.cost_rate, start)
    np.testing.assert_allclose(equity, ledger, rtol=0, atol=1e-10)


def test_default_universe_window_replays_the_engine() -> None:
    env = gymnasium.make("tradepipe/Portfolio-v0", episode_length=300).unwrapped
    assert isinstance(env, PortfolioEnv)
    targets, infos, _, start = run_episode(env, seed=3)
    assert start > 0 and len(infos) == 300
    engine = execute(targets, env.returns, env.cost_rate)
    np.testing.assert_allclose([i["equity"] for i in infos], engine.equity[start + 1:start + 301], atol=1e-10)


def test_single_asset_is_the_one_asset_portfolio() -> None:
    env = single_asset(cost_rate=0.003)
    targets, infos, _, start = run_episode(env, seed=5)
    assert np.all(np.abs(targets) <= 1.0) and targets.min() < 0.0
    engine = execute(targets, env.returns, 0.003)
    np.testing.assert_allclose([i["equity"] for i in infos], engine.equity[start + 1:], atol=1e-10)
    long_only = single_asset(long_only=True, max_leverage=0.5)
    np.testing.assert_array_equal(long_only.action_weights(np.array([[-0.7], [0.4], [3.0]])),
                                  [[0.0], [0.2], [0.5]])


def test_rebalance_on_hand_computed_values() -> None:
    held, returns, target = np.array([0.5, 0.25]), np.array([0.1, -0.2]), np.array([0.0, 0.5])
    net, turnover, cost = rebalance(held, returns, target, 0.01)
    # growth 1 + 0.05 - 0.05 = 1; drifted [0.55, 0.2]: sell 0.55, buy 0.5 (1 - k) - 0.2, so
    # k = 0.01 (0.85 - 0.5 k) = 0.0085 / 1.005 and the notional traded is k / 0.01
    assert cost == pytest.approx(0.0085 / 1.005) and turnover == pytest.approx(0.85 / 1.005)
    assert net == pytest.approx(-0.0085 / 1.005)
    batch = rebalance(np.stack([held, target]), np.stack([returns, returns]), np.stack([target, target]),
                      0.01)
    # second book: growth 1 - 0.1 = 0.9, drifted [0, 0.4 / 0.9]; buy 0.5 (1 - k) - 4 / 9: k = 0.01 / 18 / 1.005
    k = 0.01 / 18.0 / 1.005
    np.testing.assert_allclose(batch[1], [0.85 / 1.005, k / 0.01])
    np.testing.assert_allclose(batch[2], [0.0085 / 1.005, k])
    np.testing.assert_allclose(batch[0], [-0.0085 / 1.005, 0.9 * (1.0 - k) - 1.0])


def test_rewards_follow_the_equity() -> None:
    env = portfolio(reward="log_return")
    _, infos, rewards, _ = run_episode(env, seed=1)
    equity = np.array([1.0] + [i["equity"] for i in infos])
    np.testing.assert_allclose(rewards, np.log(equity[1:] / equity[:-1]), atol=1e-12)
    env = portfolio(reward="differential_sharpe", reward_params={"eta": 0.1})
    _, infos, rewards, _ = run_episode(env, seed=1)
    reference = DifferentialSharpe(eta=0.1)
    equity = np.array([1.0] + [i["equity"] for i in infos])
    np.testing.assert_allclose(rewards, [reference(r, e) for r, e in zip(equity[1:] / equity[:-1] - 1.0,
                                                                         equity[1:], strict=True)])


# --- rewards ---------------------------------------------------------------------------------------

def test_log_return_reward() -> None:
    assert LogReturn()(0.1, 1.1) == pytest.approx(math.log(1.1))


def test_differential_sharpe_on_hand_computed_values() -> None:
    reward = DifferentialSharpe(eta=0.5)
    # A = B = 0: D = 0; then A = 0.05, B = 0.005.
    assert reward(0.1, 1.1) == 0.0
    # dA = -0.1, dB = -0.0025, B - A^2 = 0.0025: D = (0.005 * -0.1 + 0.5 * 0.05 * 0.0025) / 0.0025^1.5 = -3.5
    assert reward(-0.05, 1.045) == pytest.approx(-3.5)
    # A = 0, B = 0.00375: D = B * dA / B^1.5 = 0.02 / sqrt(0.00375)
    assert reward(0.02, 1.066) == pytest.approx(0.02 / math.sqrt(0.00375))
    reward.reset()
    assert reward(0.3, 1.3) == 0.0


def test_drawdown_penalty_on_hand_computed_values() -> None:
    reward = make_reward("drawdown_penalty", params={"penalty": 2.0})
    assert reward(0.1, 1.1) == pytest.approx(math.log(1.1))                  # new peak
    assert reward(-0.1, 0.99) == pytest.approx(math.log(0.9) - 2.0 * 0.1)   # drawdown 0 -> 0.1
    assert reward(-0.05, 0.9405) == pytest.approx(math.log(0.95) - 2.0 * 0.045)  # 0.1 -> 0.145
    assert reward(0.2, 1.1286) == pytest.approx(math.log(1.2) - 0.0)          # recovering: no penalty
    assert isinstance(reward, DrawdownPenalty)


def test_batched_rewards_match_single_ones_and_reset_by_mask() -> None:
    nets = np.array([[0.01, -0.02], [0.03, 0.01], [-0.04, 0.02]])
    for name in ("differential_sharpe", "drawdown_penalty"):
        batch, singles = make_reward(name, (2,)), [make_reward(name), make_reward(name)]
        equity = np.cumprod(1.0 + nets, axis=0)
        for net, eq in zip(nets, equity, strict=True):
            expected = [s(n, e) for s, n, e in zip(singles, net, eq, strict=True)]
            np.testing.assert_allclose(batch(net, eq), expected)
        batch.reset(np.array([True, False]))
        singles[0].reset()
        np.testing.assert_allclose(batch(nets[0], equity[0]),
                                   [s(n, e) for s, n, e in zip(singles, nets[0], equity[0], strict=True)])


def test_unknown_reward_and_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="reward 'sortino' is unknown"):
        portfolio(reward="sortino")
    returns, features = market()
    with pytest.raises(ValueError, match="need returns"):
        PortfolioEnv(returns, features[:-1])
    with pytest.raises(ValueError, match="episode_length"):
        PortfolioEnv(returns, features, episode_length=T)


# --- action mapping --------------------------------------------------------------------------------

actions = arrays(np.float64, st.integers(2, 25), elements=st.floats(-3.0, 3.0))
leverages = st.floats(0.1, 4.0)


@settings(max_examples=200, deadline=None)
@given(action=actions, leverage=leverages)
def test_long_only_weights_lie_on_the_simplex(action: np.ndarray, leverage: float) -> None:
    before = action.copy()
    weights = action_to_weights(action, long_only=True, max_leverage=leverage)
    np.testing.assert_array_equal(action, before)  # pure: input untouched
    assert weights.shape == (len(action) - 1,) and np.all(weights > 0.0)
    assert weights.sum() <= leverage * (1.0 + 1e-12)
    clipped = np.clip(action, -1.0, 1.0)
    softmax = np.exp(LOGIT_SCALE * clipped) / np.exp(LOGIT_SCALE * clipped).sum()
    np.testing.assert_allclose(weights, leverage * softmax[:-1], rtol=1e-12)
    np.testing.assert_array_equal(action_to_weights(action, True, leverage), weights)  # deterministic


@settings(max_examples=200, deadline=None)
@given(action=actions, leverage=leverages)
def test_long_short_weights_respect_the_leverage_cap(action: np.ndarray, leverage: float) -> None:
    weights = action_to_weights(action, long_only=False, max_leverage=leverage)
    assert np.abs(weights).sum() <= leverage * (1.0 + 1e-12)
    clipped = np.clip(action[:-1], -1.0, 1.0)
    if np.abs(clipped).sum() <= 1.0:  # inside the unit ball the map is linear: every target is reachable
        np.testing.assert_allclose(weights, leverage * clipped, rtol=1e-12)
    else:
        assert np.abs(weights).sum() == pytest.approx(leverage)


@settings(max_examples=50, deadline=None)
@given(batch=arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 8)), elements=st.floats(-2, 2)),
       long_only=st.booleans())
def test_batched_action_mapping_is_row_by_row(batch: np.ndarray, long_only: bool) -> None:
    np.testing.assert_allclose(action_to_weights(batch, long_only, 1.5),
                               [action_to_weights(row, long_only, 1.5) for row in batch], rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(action=actions, leverage=leverages, long_only=st.booleans())
def test_book_is_the_weights_then_cash(action: np.ndarray, leverage: float, long_only: bool) -> None:
    book = action_to_book(action, long_only, leverage)
    weights = action_to_weights(action, long_only, leverage)
    np.testing.assert_array_equal(book[:-1], weights)
    assert book.sum() == pytest.approx(1.0, abs=1e-12)
    assert book[-1] >= -1e-12 or leverage > 1.0 or not long_only  # cash >= 0 unless leverage allows debt


def test_neutral_action_is_equal_weight() -> None:
    np.testing.assert_allclose(action_to_weights(np.zeros(N + 1)), np.full(N, 1.0 / (N + 1)))
    assert action_to_weights(np.ones(N + 1)).sum() == pytest.approx(N / (N + 1))
    np.testing.assert_allclose(action_to_weights([0.5, -0.25, 1.0], long_only=False, max_leverage=2.0),
                               [1.0, -0.5])


# --- batch -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [portfolio, single_asset])
def test_vec_env_matches_independent_envs_and_auto_resets(make: Any) -> None:
    n_envs, rng = 3, np.random.default_rng(0)
    vec = PortfolioVecEnv(make(reward="drawdown_penalty"), n_envs)
    singles = [make(reward="drawdown_penalty") for _ in range(n_envs)]
    obs = vec.reset()
    np.testing.assert_array_equal(obs, [env.reset()[0] for env in singles])
    for _ in range(T - 1):
        actions = rng.uniform(-1, 1, (n_envs, *vec.action_space.shape)).astype(np.float32)
        obs, rewards, dones, infos = vec.step(actions)
        results = [env.step(a) for env, a in zip(singles, actions, strict=True)]
        np.testing.assert_allclose(rewards, [r[1] for r in results], rtol=1e-6)
        np.testing.assert_allclose([i["equity"] for i in infos], [r[4]["equity"] for r in results],
                                   rtol=1e-12)
    assert dones.all() and all(i["TimeLimit.truncated"] for i in infos)
    np.testing.assert_array_equal([i["weights"] for i in infos], [r[4]["weights"] for r in results])
    np.testing.assert_array_equal([i["terminal_observation"] for i in infos], [r[0] for r in results])
    np.testing.assert_array_equal(obs, [env.reset()[0] for env in singles])  # auto-reset happened


def test_vec_env_windows_are_seeded_and_trainable() -> None:
    def starts(seed: int) -> list[int]:
        vec = PortfolioVecEnv(portfolio(episode_length=10), 4)
        vec.seed(seed)
        vec.reset()
        return [int(i["t"]) - 1 for i in vec.step(np.zeros((4, N + 1), np.float32))[3]]

    assert starts(1) == starts(1) != starts(2)
    model = PPO("MlpPolicy", PortfolioVecEnv(portfolio(episode_length=10), 4, seed=0), n_steps=16,
                batch_size=32, n_epochs=1, seed=0)
    model.learn(total_timesteps=64)
    assert model.num_timesteps == 64


# --- default features ------------------------------------------------------------------------------

def test_causal_features_ignore_the_future() -> None:
    close = np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.01, (200, 3)), axis=0))
    returns, features = causal_features(close)
    assert returns.shape == (179, 3) and features.shape == (179, 3, 4)
    np.testing.assert_allclose(returns, close[21:] / close[20:-1] - 1.0)
    changed = close.copy()
    changed[150:] *= 1.5  # beyond the 60% used for the z-score statistics
    _, features_changed = causal_features(changed)
    np.testing.assert_array_equal(features_changed[:150 - 21], features[:150 - 21])
    assert not np.allclose(features_changed[150 - 21], features[150 - 21])
    fit = features[:int(0.6 * 179)]
    np.testing.assert_allclose(fit.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(fit.std(axis=0), 1.0)


def test_single_asset_float_path_is_bit_identical_to_the_array_accounting() -> None:
    """SingleAssetTradingEnv.step (plain floats, precomputed observation rows) against the batched array path of
    ``rebalance`` (its exact solve, another order of operations: equal to rounding) and ``observe`` (equal to the
    bit), including trades that change side."""
    from tradepipe.core.execution import rebalance

    env = single_asset(long_only=False, max_leverage=1.5, cost_rate=0.01, reward="log_return")
    env.reset(seed=3)
    held, equity = env.all_cash[:-1], 1.0
    rng = np.random.default_rng(3)
    for _ in range(300):
        action = rng.uniform(-1.2, 1.2, 1).astype(np.float32)
        t = env._t + 1
        book = env.action_book(action)
        net, turnover, cost = rebalance(held[None], env.returns[t][None], book[None, :-1], env.cost_rate)
        equity = equity * (1.0 + float(net[0]))
        obs, reward, terminated, truncated, info = env.step(action)
        np.testing.assert_allclose([info["equity"], info["turnover"], info["cost"]],
                                   [equity, float(turnover[0]), float(cost[0])], rtol=1e-13, atol=1e-17)
        assert np.array_equal(obs, env.observe(t, book)) and np.array_equal(info["weights"], book[:-1])
        assert reward == pytest.approx(float(np.log1p(float(net[0]))), rel=1e-12, abs=1e-17)
        held = book[:-1]
        if terminated or truncated:
            env.reset()
            held, equity = env.all_cash[:-1], 1.0
