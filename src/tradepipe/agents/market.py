"""Build the market arrays (``core.market.Market``) from bars, features and the predictor's forecasts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradepipe.core.market import Market
from tradepipe.core.scaler import Scaler
from tradepipe.core.schema import to_wide

__all__ = ["build_market"]


def build_market(bars: pd.DataFrame, features: pd.DataFrame, predictions: pd.DataFrame, columns: list[str],
                 scaler: Scaler, prediction_scale: float) -> Market:
    """Align bars, features and forecasts (both scaled by training-window statistics) on the bars' calendar."""
    close = to_wide(bars)
    symbols = list(close.columns)
    returns = close.pct_change(fill_method=None).fillna(0.0).to_numpy(dtype=np.float64)
    index = pd.MultiIndex.from_product([close.index, symbols], names=["timestamp", "symbol"])
    feats = features.set_index(["timestamp", "symbol"])[columns].reindex(index)
    arr = feats.to_numpy(dtype=np.float32).reshape(len(close), len(symbols), len(columns))
    scaled = np.nan_to_num(scaler.transform(arr), nan=0.0)
    preds = (predictions.pivot(index="timestamp", columns="symbol", values="prediction")
             .reindex(index=close.index, columns=symbols).to_numpy(dtype=np.float32))
    preds = np.clip(preds / prediction_scale, -5.0, 5.0)
    return Market(close.index, symbols, returns, scaled, np.nan_to_num(preds, nan=0.0))
