"""A tiny trained trading policy logged into a throwaway MLflow registry (for serving tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import mlflow
from mlflow import MlflowClient
from tradepipe.agents.algorithms import make_agent
from tradepipe.agents.policy import PolicySpec, TradingPolicy, TradingPolicyModel
from tradepipe.config import AgentParams, FeatureParams
from tradepipe.core.scaler import Scaler
from tradepipe.features import feature_columns
from tradepipe.models.cnn_lstm import CNNLSTM
from tradepipe.models.predictor import Predictor
from tradepipe.registry.versions import AGENT_MODEL, CHAMPION

FEATURES = FeatureParams(indicators=["rsi_14", "sma_ratio_50"], return_horizons=[1, 5], label_horizon=5)


def tiny_policy(bars: pd.DataFrame, directory: Path, steps: int = 200) -> Path:
    """Train a tiny SAC policy on ``bars`` (seconds on CPU) and save it into ``directory``."""
    cols = feature_columns(FEATURES)
    scaler = Scaler(np.zeros(len(cols), np.float32), np.ones(len(cols), np.float32) * 0.1)
    predictor = Predictor(CNNLSTM(len(cols), 4, 3, 4).eval(), {"seq_len": 5, "conv_filters": 4, "lstm_hidden": 4},
                          FEATURES, scaler, 0.02)
    symbols = sorted(bars["symbol"].unique())
    policy = TradingPolicy({}, {"sac": 1.0}, PolicySpec(symbols, lookback=1, cost_rate=0.001), predictor)
    market = policy.market(bars)
    agent = make_agent("sac", policy.spec.env(market, episode_length=50), policy.spec.risk_manager(market),
                       AgentParams(batch_size=32, buffer_size=1000), steps, seed=3)
    agent.learn(steps)
    policy.agents["sac"] = agent
    policy.save(directory)
    return directory


def publish_champion(tracking_uri: str, policy_dir: Path) -> str:
    """Log ``policy_dir`` as the pyfunc the register stage logs, register it as a new version of tradepipe-agent
    and make that version champion; return the version."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        client = MlflowClient()
        experiment = client.get_experiment_by_name("serving-tests")
        # an explicit experiment: mlflow caches the active experiment id across tracking URIs
        # artifacts beside a SQLite store (MLflow's default is ./mlruns in the working directory)
        store = tracking_uri.removeprefix("sqlite:///")
        artifacts = (Path(store).parent / "mlartifacts").as_uri() if store != tracking_uri else None
        experiment_id = (experiment.experiment_id if experiment
                         else client.create_experiment("serving-tests", artifact_location=artifacts))
        with mlflow.start_run(experiment_id=experiment_id) as run:
            info = mlflow.pyfunc.log_model(name="policy", python_model=TradingPolicyModel(),
                                           artifacts={"policy": str(policy_dir)})
        if not client.search_registered_models(f"name='{AGENT_MODEL}'"):
            client.create_registered_model(AGENT_MODEL)
        version = str(client.create_model_version(AGENT_MODEL, info.model_uri, run_id=run.info.run_id).version)
        client.set_registered_model_alias(AGENT_MODEL, CHAMPION, version)
    finally:
        mlflow.set_tracking_uri(previous)
    return version
