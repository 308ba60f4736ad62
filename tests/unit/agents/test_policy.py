"""The trading policy: risk-managed weights, reproducible training, save/load, and no look-ahead when serving."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tradepipe.agents.algorithms import make_agent
from tradepipe.agents.market import build_market
from tradepipe.agents.policy import PolicySpec, TradingPolicy, TradingPolicyModel
from tradepipe.agents.training import training_env
from tradepipe.config import AgentParams, Algo, FeatureParams, Params, RiskParams, RLParams
from tradepipe.core.market import Market
from tradepipe.core.scaler import Scaler
from tradepipe.features import build_features, feature_columns
from tradepipe.models.cnn_lstm import CNNLSTM
from tradepipe.models.predictor import Predictor
from tradepipe.runtime.params import check_reward

FP = FeatureParams(indicators=["rsi_14", "sma_ratio_50"], return_horizons=[1, 5], label_horizon=5)
AGENT = AgentParams(batch_size=32, buffer_size=1000, n_steps=32, n_envs=2)
STEPS = 200
RISK = RiskParams(max_weight=0.3, max_drawdown=0.1, breaker_cooldown=5)


def _policy(market: Market, predictor: Predictor, algo: Algo = "sac", seed: int = 3,
            spec: PolicySpec | None = None) -> TradingPolicy:
    spec = spec or PolicySpec(market.symbols, lookback=1, cost_rate=0.001, risk=RISK)
    agent = make_agent(algo, spec.env(market, episode_length=50), spec.risk_manager(market), AGENT, STEPS, seed)
    agent.learn(STEPS)
    return TradingPolicy({algo: agent}, {algo: 1.0}, spec, predictor)


@pytest.fixture(scope="module")
def market_and_predictor(bars: pd.DataFrame) -> tuple[Market, Predictor]:
    cols = feature_columns(FP)
    scaler = Scaler(np.zeros(len(cols), np.float32), np.ones(len(cols), np.float32) * 0.1)
    predictor = Predictor(CNNLSTM(len(cols), 4, 3, 4).eval(), {"seq_len": 5, "conv_filters": 4, "lstm_hidden": 4},
                          FP, scaler, 0.02)
    market = build_market(bars, build_features(bars, FP), predictor.predict_bars(bars), cols, scaler,
                          predictor.forecast_scale)
    return market, predictor


@pytest.fixture(scope="module")
def policy(market_and_predictor: tuple[Market, Predictor]) -> TradingPolicy:
    return _policy(*market_and_predictor)


def test_weights_sum_to_one_long_only_and_capped(policy: TradingPolicy, bars: pd.DataFrame) -> None:
    w = policy.target_weights(bars)
    assert list(w.index) == [*policy.spec.symbols, "CASH"]
    assert np.isclose(w.sum(), 1.0) and (w >= 0).all()
    targets = policy.targets(policy.market(bars))
    assert targets.max() <= RISK.max_weight + 1e-12 and (targets >= 0).all()


def test_serving_uses_no_future_bars(policy: TradingPolicy, bars: pd.DataFrame) -> None:
    full = policy.targets(policy.market(bars))
    dates = bars["timestamp"].drop_duplicates().sort_values()
    for cut in (dates.iloc[400], dates.iloc[800]):
        part = policy.targets(policy.market(bars[bars["timestamp"] <= cut]))
        np.testing.assert_allclose(part, full[: len(part)], atol=1e-6)


@pytest.mark.parametrize("algo", ["sac", "td3", "ppo"])
def test_same_seed_same_weights(algo: Algo, market_and_predictor: tuple[Market, Predictor]) -> None:
    market = market_and_predictor[0]
    first, again = (_policy(*market_and_predictor, algo=algo).targets(market) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first).sum() > 0.0


def test_save_load_and_pyfunc_give_the_same_weights(policy: TradingPolicy, bars: pd.DataFrame,
                                                    tmp_path: Path) -> None:
    policy.save(tmp_path / "policy")
    loaded = TradingPolicy.load(tmp_path / "policy")
    assert loaded.spec == policy.spec and loaded.blend == policy.blend
    market = policy.market(bars)
    np.testing.assert_array_equal(loaded.targets(market), policy.targets(market))
    model = TradingPolicyModel()
    model.load_context(SimpleNamespace(artifacts={"policy": str(tmp_path / "policy")}))
    served = model.predict(None, bars.assign(timestamp=bars["timestamp"].astype(str)))
    np.testing.assert_allclose(served["weight"].to_numpy(), policy.target_weights(bars).to_numpy())


def test_wrong_universe_is_refused(policy: TradingPolicy, bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="the policy trades"):
        policy.target_weights(bars[bars["symbol"] != "KO"])


LONG_SHORT = RiskParams(long_only=False, max_weight=0.6, max_gross=1.5, target_vol=None, max_drawdown=None,
                        stop_loss=None, take_profit=None, turbulence_quantile=None)


def test_params_yaml_long_short_and_gross_cap_reach_the_policy(
        params: Params, market_and_predictor: tuple[Market, Predictor], tmp_path: Path) -> None:
    market, predictor = market_and_predictor
    spec = PolicySpec.from_params(market.symbols, params.model_copy(update={"risk": LONG_SHORT}))
    assert (spec.long_only, spec.max_leverage, spec.risk) == (False, 1.5, LONG_SHORT)
    policy = _policy(market, predictor, spec=spec)
    targets = policy.targets(market)
    assert (targets < 0.0).any() and (targets > 0.0).any()
    assert np.abs(targets).sum(axis=1).max() <= 1.5 + 1e-12 and np.abs(targets).max() <= 0.6 + 1e-12
    # The first decision is the agent's long-short book at leverage 1.5, then the per-asset and gross caps.
    obs, _ = spec.env(market).reset()
    action = policy.agents["sac"].predict(obs[None], deterministic=True)[0][0]
    proposed = 1.5 * action[:-1] / max(1.0, np.abs(action[:-1]).sum())
    capped = np.clip(proposed, -0.6, 0.6)
    np.testing.assert_allclose(targets[0], capped * min(1.0, 1.5 / np.abs(capped).sum()), rtol=1e-12)
    policy.save(tmp_path / "policy")
    loaded = TradingPolicy.load(tmp_path / "policy")
    assert loaded.spec == spec
    np.testing.assert_array_equal(loaded.targets(market), targets)


def test_spec_json_round_trips_and_old_specs_load_with_defaults() -> None:
    spec = PolicySpec(["A", "B"], lookback=2, cost_rate=0.002, long_only=False, max_leverage=1.7, risk=LONG_SHORT)
    assert PolicySpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    old = {"symbols": ["A"], "lookback": 1, "cost_rate": 0.001, "long_only": True, "risk": RiskParams().model_dump()}
    loaded = PolicySpec.from_json(old)
    assert (loaded.long_only, loaded.max_leverage, loaded.forecast) == (True, 1.0, True)
    blind = replace(spec, forecast=False)
    assert PolicySpec.from_json(json.loads(json.dumps(blind.to_json()))) == blind
    with pytest.raises(ValueError, match="max_leverage must be > 0"):
        PolicySpec(["A"], 1, 0.0, max_leverage=0.0)


def test_a_spec_without_the_forecast_observes_no_forecast(market_and_predictor: tuple[Market, Predictor]) -> None:
    market = market_and_predictor[0]
    spec = PolicySpec(market.symbols, lookback=2, cost_rate=0.001)
    seen, blind = spec.env(market), replace(spec, forecast=False).env(market)
    n = len(market.symbols)
    assert seen.obs_size - blind.obs_size == n
    book = seen.all_cash
    with_forecast, without = seen.observe(5, book), blind.observe(5, book)
    np.testing.assert_array_equal(with_forecast[-n - 1 - n:-n - 1], market.predictions[5])
    np.testing.assert_array_equal(np.concatenate([with_forecast[:-2 * n - 1], with_forecast[-n - 1:]]), without)


def test_training_env_uses_the_configured_reward(market_and_predictor: tuple[Market, Predictor]) -> None:
    market = market_and_predictor[0]
    spec = PolicySpec(market.symbols, lookback=1, cost_rate=0.001, risk=RISK)
    cfg = RLParams(total_timesteps=10, episode_length=60, reward="drawdown_penalty", reward_params={"penalty": 3.0})
    env = training_env(market, spec, cfg)
    assert (env.reward_name, env.reward_params, env.episode_length) == ("drawdown_penalty", {"penalty": 3.0}, 60)
    vec = make_agent("sac", env, spec.risk_manager(market), AGENT, 10, seed=0).get_env()
    assert vec is not None
    vec.seed(0)
    vec.reset()
    rng = np.random.default_rng(0)
    equity, peak, drawdown = np.ones(AGENT.n_envs), np.ones(AGENT.n_envs), np.zeros(AGENT.n_envs)
    for _ in range(40):  # within the first episode of every book
        _, rewards, dones, infos = vec.step(rng.uniform(-1, 1, (AGENT.n_envs, len(market.symbols) + 1)))
        assert not dones.any()
        new = np.array([info["equity"] for info in infos])
        peak = np.maximum(peak, new)
        expected = np.log(new / equity) - 3.0 * np.maximum(1.0 - new / peak - drawdown, 0.0)
        equity, drawdown = new, 1.0 - new / peak
        np.testing.assert_allclose(rewards, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("update", "message"), [
    ({"reward": "differential_sharpe", "reward_params": {"penalty": 1.0}}, r"\['penalty'\] are not parameters"),
    ({"reward": "differential_sharpe", "reward_params": {"eta": 2.0}}, r"eta must be in \(0, 1\]"),
])
def test_bad_reward_settings_are_refused_naming_the_key(update: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_reward(RLParams.model_validate({"total_timesteps": 10, **update}))


def test_an_unknown_reward_is_refused_by_the_schema() -> None:
    with pytest.raises(ValidationError, match="reward"):
        RLParams.model_validate({"total_timesteps": 10, "reward": "sharpe"})


def test_serving_answers_on_finite_extreme_prices(policy: TradingPolicy, bars: pd.DataFrame) -> None:
    wild = bars.copy()
    days = wild["timestamp"].drop_duplicates().sort_values()
    spike = (wild["symbol"] == "JPM") & wild["timestamp"].isin(days.iloc[500:503])
    wild.loc[spike, "close"] = 1e300
    weights = policy.target_weights(wild)
    assert np.isfinite(weights.to_numpy()).all() and np.isclose(weights.sum(), 1.0) and (weights >= 0).all()
    assert weights.drop("CASH").max() <= RISK.max_weight + 1e-12
