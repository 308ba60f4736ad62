"""Forecast quality: MSE, directional accuracy, daily information coefficient and rank IC, with baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradepipe.config import FeatureParams
from tradepipe.models.panel import Panel, Windows
from tradepipe.models.predictor import Predictor


def forecast_metrics(pred: np.ndarray, actual: np.ndarray, timestamps: np.ndarray) -> dict[str, float]:
    """MSE, directional accuracy, and the means over days of the cross-sectional Pearson (IC) and Spearman
    (rank IC) correlations of forecast and outcome.

    A day counts when it has at least 3 samples and neither forecasts nor outcomes are all equal there (its
    correlation is undefined otherwise); with no such day both ICs are 0.
    """
    pred = np.asarray(pred, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    frame = pd.DataFrame({"t": timestamps, "p": pred, "a": actual})
    daily = frame.groupby("t").filter(lambda g: len(g) >= 3 and g["p"].nunique() > 1 and g["a"].nunique() > 1)
    by_day = daily.groupby("t")
    ic = by_day.apply(lambda g: g["p"].corr(g["a"]), include_groups=False)
    rank_ic = by_day.apply(lambda g: g["p"].corr(g["a"], method="spearman"), include_groups=False)
    return {
        "mse": float(np.mean((pred - actual) ** 2)),
        "directional_accuracy": float(np.mean(np.sign(pred) == np.sign(actual))),
        "ic": float(ic.mean()) if len(ic) else 0.0,
        "rank_ic": float(rank_ic.mean()) if len(rank_ic) else 0.0,
    }


def baseline_metrics(actual: np.ndarray, momentum: np.ndarray, timestamps: np.ndarray) -> dict[str, float]:
    """The same metrics for the zero forecast and for last-return momentum (prefixed by baseline name)."""
    zero = forecast_metrics(np.zeros_like(actual), actual, timestamps)
    mom = forecast_metrics(momentum, actual, timestamps)
    return {**{f"zero_{k}": v for k, v in zero.items() if k == "mse"},
            **{f"momentum_{k}": v for k, v in mom.items()}}


def momentum_signal(panel: Panel, columns: list[str], features: FeatureParams) -> np.ndarray:
    """The raw (N, T) momentum baseline: the log return over the label horizon (the first return horizon when
    the features have no such column); ``columns`` name the panel's features."""
    horizons = features.return_horizons
    lookback = features.label_horizon if features.label_horizon in horizons else horizons[0]
    return panel.features[:, :, columns.index(f"logret_{lookback}")]


def evaluate_predictor(predictor: Predictor, windows: Windows, momentum: np.ndarray, timestamps: pd.DatetimeIndex,
                       prefix: str) -> dict[str, float]:
    """Forecast metrics of ``predictor`` on ``windows`` and of the baselines (``momentum`` from
    :func:`momentum_signal`), keyed ``<prefix>_<metric>``; ``timestamps`` are the panel's."""
    actual = windows.labels[windows.sym, windows.t]
    ts = timestamps[windows.t].to_numpy()
    metrics = {**forecast_metrics(predictor.forecast_windows(windows), actual, ts),
               **baseline_metrics(actual, momentum[windows.sym, windows.t], ts)}
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def frame_metrics(panel: Panel, forecasts: pd.DataFrame, prefix: str) -> dict[str, float]:
    """Forecast metrics of a (timestamp, symbol, prediction) frame against ``panel``'s labels (where known),
    keyed ``<prefix>_<metric>``."""
    labels = panel.labels[np.searchsorted(panel.symbols, forecasts["symbol"]),
                          panel.timestamps.searchsorted(forecasts["timestamp"])]
    ok = np.isfinite(labels)
    metrics = forecast_metrics(forecasts["prediction"].to_numpy()[ok], labels[ok],
                               forecasts["timestamp"].to_numpy()[ok])
    return {f"{prefix}_{k}": v for k, v in metrics.items()}
