"""The daily monitor: drift and live performance of the champion, logged to MLflow, with a retrain verdict."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

import mlflow
from mlflow import MlflowClient
from tradepipe.config import Params
from tradepipe.core.io import read_parquet
from tradepipe.monitoring.decision import drifted_features, retrain_reasons
from tradepipe.monitoring.drift import feature_drift
from tradepipe.monitoring.performance import live_returns, performance
from tradepipe.paths import BARS, FEATURES
from tradepipe.registry.provenance import load_verified
from tradepipe.registry.versions import AGENT_MODEL, FIT_END_TAG, FIT_START_TAG, TRAIN_END_TAG, champion
from tradepipe.runtime.params import stage_params
from tradepipe.runtime.tracking import configure
from tradepipe.trading.summary import realized_returns

EXPERIMENT = "tradepipe-monitoring"
KEYS = ("timestamp", "symbol")
log = logging.getLogger(__name__)


def monitor(root: Path) -> dict[str, Any]:
    """Measure the champion on the project at ``root``; log one run to ``tradepipe-monitoring``; return the verdict.

    Drift compares the recent bars' features with the live policy's fit window: from its ``fit_data_start`` tag
    to its ``fit_data_end`` tag (:func:`drift_reference`); a version without them, with the predictor's training
    window (its ``train_end`` tag, else params.yaml's split.train_end). Live performance counts only bars after
    the last one the champion was fit on (its ``fit_data_end`` tag); with none yet its thresholds are not applied
    (logged). A version without the tag is judged on the last ``recent_bars`` bars, which may lie inside its fit
    window (logged).
    """
    params = stage_params(root / "params.yaml")
    cfg = params.monitor
    uri = configure(params.tracking.uri, EXPERIMENT, root)
    current = champion(MlflowClient(), AGENT_MODEL)
    tags = current.tags if current else {}
    features = read_parquet(root / FEATURES)
    columns = [c for c in features.columns if c not in KEYS]
    recent_start = features["timestamp"].drop_duplicates().nlargest(cfg.recent_bars).min()
    reference, described = drift_reference(features, tags, params.split.train_end)
    if reference.empty:
        raise ValueError(f"{root / FEATURES} has no rows in the champion's fit window ({described}): "
                         "rerun the pipeline (features) for this champion's data")
    drift = feature_drift(reference, features[features["timestamp"] >= recent_start], columns, cfg.psi_bins)
    with mlflow.start_run(run_name="monitor"):
        mlflow.log_params(cfg.model_dump())
        mlflow.set_tag("tradepipe.drift_reference", described)
        mlflow.log_metrics({f"{stat}.{feat}": float(v) for feat, row in drift.iterrows() for stat, v in row.items()})
        mlflow.log_dict(drift.to_dict(orient="index"), "drift.json")
        live: dict[str, float] = {}
        if current is None:
            reasons = [f"no {AGENT_MODEL}@champion to monitor"]
        else:
            mlflow.set_tag("tradepipe.champion_version", current.version)
            live = _live_performance(current.version, tags, uri, root, params)
            age_days = (time.time() * 1000 - current.creation_timestamp) / 86_400_000
            mlflow.log_metric("champion_age_days", age_days)
            reasons = retrain_reasons(drift, live, cfg, age_days)
        drifted = drifted_features(drift, cfg)
        mlflow.log_metrics({"drifted_features": float(len(drifted)), "retrain": float(bool(reasons))})
        mlflow.set_tag("tradepipe.retrain_reasons", "; ".join(reasons) or "none")
    return {"champion_version": current.version if current else None, "live": live, "drifted": drifted,
            "reasons": reasons}


def drift_reference(features: pd.DataFrame, tags: dict[str, str], train_end: str) -> tuple[pd.DataFrame, str]:
    """The rows of ``features`` the champion was fit on, and their description: the live policy's fit window
    ``[fit_data_start, fit_data_end]`` from its tags; without them (a version registered before the tags), every
    row up to its ``train_end`` tag (else ``train_end``)."""
    start, end = tags.get(FIT_START_TAG), tags.get(FIT_END_TAG)
    if start is not None and end is not None:
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        rows = features[(features["timestamp"] >= lo) & (features["timestamp"] <= hi)]
        return rows, f"the live policy's fit window {lo.date()}..{hi.date()}"
    until = pd.Timestamp(tags.get(TRAIN_END_TAG, train_end), tz="UTC")
    return features[features["timestamp"] <= until], f"up to the training end {until.date()} (no fit window tags)"


def _live_performance(version: str, tags: dict[str, str], uri: str, root: Path, params: Params) -> dict[str, float]:
    """The champion's live metrics (logged, ``live.*``): from the realized equity of the paper account trading it
    (the trade store), else re-simulated over out-of-sample bars when its fit end (tag) is known; empty when there
    are none yet. The version is verified (signed digest) before it is loaded."""
    cfg = params.monitor
    realized = realized_returns(root, params.trading, AGENT_MODEL, int(version), cfg.recent_bars)
    if realized is not None and len(realized[1]) >= 2:  # a paper account trades it: judge what it really earned
        account, returns = realized
        window = f"realized equity of paper account {account}: its last {len(returns)} bars on v{version}"
        mlflow.log_metric("live.realized_bars", float(len(returns)))
        log.info("%s v%s live window: %s", AGENT_MODEL, version, window)
        mlflow.set_tag("tradepipe.live_window", window)
        live = performance(returns, params.backtest.periods_per_year)
        mlflow.log_metrics({f"live.{k}": v for k, v in live.items()})
        return live
    model = load_verified(MlflowClient(), AGENT_MODEL, version, uri, tags)
    fit_end = tags.get(FIT_END_TAG)
    fitted_until = pd.Timestamp(fit_end) if fit_end else None
    returns = live_returns(model.unwrap_python_model().policy, read_parquet(root / BARS), cfg.recent_bars,
                           fitted_until)
    if fitted_until is None:
        window = f"last {cfg.recent_bars} bars; fit end unknown, they may be in-sample"
    else:
        window = f"{len(returns)} out-of-sample bars after the fit end {fitted_until.date()}"
        mlflow.log_metric("live.oos_bars", float(len(returns)))
    log.info("%s v%s live window: %s", AGENT_MODEL, version, window)
    mlflow.set_tag("tradepipe.live_window", window)
    if returns.empty:
        log.info("no out-of-sample bars yet: live performance thresholds not applied")
        return {}
    live = performance(returns, params.backtest.periods_per_year)
    mlflow.log_metrics({f"live.{k}": v for k, v in live.items()})
    return live
