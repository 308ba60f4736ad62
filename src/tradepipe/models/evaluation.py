"""Forecast quality: MSE, directional accuracy, information coefficient and daily rank IC, with baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd


def forecast_metrics(pred: np.ndarray, actual: np.ndarray, timestamps: np.ndarray) -> dict[str, float]:
    """MSE, directional accuracy, Pearson IC and the mean of daily cross-sectional Spearman ICs."""
    pred = np.asarray(pred, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    frame = pd.DataFrame({"t": timestamps, "p": pred, "a": actual})
    daily = frame.groupby("t").filter(lambda g: len(g) >= 3 and g["p"].nunique() > 1)
    rank_ic = daily.groupby("t").apply(lambda g: g["p"].corr(g["a"], method="spearman"), include_groups=False)
    ic = float(np.corrcoef(pred, actual)[0, 1]) if np.std(pred) > 0 else 0.0
    return {
        "mse": float(np.mean((pred - actual) ** 2)),
        "directional_accuracy": float(np.mean(np.sign(pred) == np.sign(actual))),
        "ic": ic,
        "rank_ic": float(rank_ic.mean()) if len(rank_ic) else 0.0,
    }


def baseline_metrics(actual: np.ndarray, momentum: np.ndarray, timestamps: np.ndarray) -> dict[str, float]:
    """The same metrics for the zero forecast and for last-return momentum (prefixed by baseline name)."""
    zero = forecast_metrics(np.zeros_like(actual), actual, timestamps)
    mom = forecast_metrics(momentum, actual, timestamps)
    return {**{f"zero_{k}": v for k, v in zero.items() if k == "mse"},
            **{f"momentum_{k}": v for k, v in mom.items()}}
