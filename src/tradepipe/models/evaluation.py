"""Forecast quality: MSE, directional accuracy, daily information coefficient and rank IC, with baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
