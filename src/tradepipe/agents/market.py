"""Market arrays for the environments: returns, scaled features and forecasts on one calendar."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from tradepipe.data.schema import to_wide
from tradepipe.models.panel import Scaler

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Market:
    """Aligned arrays: ``returns[t]`` is the simple return into bar t; features and forecasts are known at t."""

    timestamps: pd.DatetimeIndex
    symbols: list[str]
    returns: F64        # (T, N)
    features: F32       # (T, N, F), scaled; 0 where missing
    predictions: F32    # (T, N); 0 where missing

    def take(self, bars: slice) -> Market:
        """The bars at positions ``bars``."""
        return Market(self.timestamps[bars], self.symbols, self.returns[bars], self.features[bars],
                      self.predictions[bars])

    def window(self, start: pd.Timestamp, stop: pd.Timestamp | None = None) -> Market:
        """The bars with ``start <= timestamp`` (``< stop`` when given)."""
        mask = self.timestamps >= start
        if stop is not None:
            mask &= self.timestamps < stop
        positions = np.flatnonzero(mask)
        return self.take(slice(positions[0], positions[-1] + 1) if len(positions) else slice(0, 0))


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
