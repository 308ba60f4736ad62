"""The trading policy: weights on the simplex, reproducible training, and no look-ahead when serving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradepipe.agents.algorithms import make_agent
from tradepipe.agents.market import build_market
from tradepipe.agents.policy import PolicySpec, TradingPolicy, rollout
from tradepipe.config import FeatureParams, RLParams
from tradepipe.features import build_features, feature_columns
from tradepipe.models.cnn_lstm import CNNLSTM
from tradepipe.models.panel import Scaler
from tradepipe.models.predictor import Predictor

FP = FeatureParams(indicators=["rsi_14", "sma_ratio_50"], return_horizons=[1, 5], label_horizon=5)
RL = RLParams(algo="sac", total_timesteps=200, batch_size=32, buffer_size=1000)


@pytest.fixture(scope="module")
def policy(bars: pd.DataFrame) -> TradingPolicy:
    cols = feature_columns(FP)
    feats = build_features(bars, FP)
    scaler = Scaler(np.zeros(len(cols), np.float32), np.ones(len(cols), np.float32) * 0.1)
    predictor = Predictor(CNNLSTM(len(cols), 4, 3, 4).eval(), {"seq_len": 5, "conv_filters": 4, "lstm_hidden": 4},
                          FP, scaler, 0.02)
    market = build_market(bars, feats, predictor.predict_bars(bars), cols, scaler, predictor.y_scale)
    spec = PolicySpec("sac", market.symbols, lookback=1, cost_rate=0.001)
    agent = make_agent(spec.env(market, episode_length=50), RL, seed=3)
    agent.learn(RL.total_timesteps)
    return TradingPolicy(agent, spec, predictor)


def test_weights_sum_to_one_and_are_long_only(policy: TradingPolicy, bars: pd.DataFrame) -> None:
    w = policy.target_weights(bars)
    assert list(w.index) == [*policy.spec.symbols, "CASH"]
    assert np.isclose(w.sum(), 1.0) and (w >= 0).all()


def test_serving_uses_no_future_bars(policy: TradingPolicy, bars: pd.DataFrame) -> None:
    full = rollout(policy.agent, policy.spec.env(policy.market(bars)))
    dates = bars["timestamp"].drop_duplicates().sort_values()
    for cut in (dates.iloc[400], dates.iloc[800]):
        truncated = bars[bars["timestamp"] <= cut]
        part = rollout(policy.agent, policy.spec.env(policy.market(truncated)))
        np.testing.assert_allclose(part, full[: len(part)], atol=1e-6)


def test_training_is_reproducible(policy: TradingPolicy, bars: pd.DataFrame) -> None:
    market = policy.market(bars)
    again = make_agent(policy.spec.env(market, episode_length=50), RL, seed=3)
    again.learn(RL.total_timesteps)
    np.testing.assert_array_equal(rollout(again, policy.spec.env(market)),
                                  rollout(policy.agent, policy.spec.env(market)))


def test_wrong_universe_is_refused(policy: TradingPolicy, bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="the policy trades"):
        policy.target_weights(bars[bars["symbol"] != "KO"])
