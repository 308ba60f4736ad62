"""The daily monitor: drift and live performance of the champion, logged to MLflow, with a retrain verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

import mlflow
from mlflow import MlflowClient
from tradepipe.config import load_params
from tradepipe.monitoring.decision import drifted_features, retrain_reasons
from tradepipe.monitoring.drift import feature_drift
from tradepipe.monitoring.performance import live_returns, performance
from tradepipe.paths import BARS, FEATURES
from tradepipe.registry.versions import AGENT_MODEL, champion
from tradepipe.tracking import configure

EXPERIMENT = "tradepipe-monitoring"
KEYS = ("timestamp", "symbol")


def monitor(root: Path) -> dict[str, Any]:
    """Measure the champion on the project at ``root``; log one run to ``tradepipe-monitoring``; return the verdict."""
    params = load_params(root / "params.yaml")
    cfg = params.monitor
    configure(params.tracking.uri, EXPERIMENT, root)
    current = champion(MlflowClient(), AGENT_MODEL)
    features = pd.read_parquet(root / FEATURES)
    columns = [c for c in features.columns if c not in KEYS]
    recent_start = features["timestamp"].drop_duplicates().nlargest(cfg.recent_bars).min()
    reference = features[features["timestamp"] <= pd.Timestamp(params.split.train_end, tz="UTC")]
    drift = feature_drift(reference, features[features["timestamp"] >= recent_start], columns, cfg.psi_bins)
    with mlflow.start_run(run_name="monitor"):
        mlflow.log_params(cfg.model_dump())
        mlflow.log_metrics({f"{stat}.{feat}": float(v) for feat, row in drift.iterrows() for stat, v in row.items()})
        mlflow.log_dict(drift.to_dict(orient="index"), "drift.json")
        if current is None:
            reasons = [f"no {AGENT_MODEL}@champion to monitor"]
            live: dict[str, float] = {}
        else:
            mlflow.set_tag("tradepipe.champion_version", current.version)
            model = mlflow.pyfunc.load_model(f"models:/{AGENT_MODEL}/{current.version}")
            returns = live_returns(model.unwrap_python_model().policy, pd.read_parquet(root / BARS), cfg.recent_bars)
            live = performance(returns, params.backtest.periods_per_year)
            mlflow.log_metrics({f"live.{k}": v for k, v in live.items()})
            reasons = retrain_reasons(drift, live, cfg)
        drifted = drifted_features(drift, cfg)
        mlflow.log_metrics({"drifted_features": float(len(drifted)), "retrain": float(bool(reasons))})
        mlflow.set_tag("tradepipe.retrain_reasons", "; ".join(reasons) or "none")
    return {"champion_version": current.version if current else None, "live": live, "drifted": drifted,
            "reasons": reasons}
