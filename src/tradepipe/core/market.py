"""Market arrays for the environments and the backtest: returns, scaled features and forecasts on one calendar."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradepipe.core.types import F32, Array

__all__ = ["Market"]


@dataclass(frozen=True)
class Market:
    """Aligned arrays: ``returns[t]`` is the simple return into bar t; features and forecasts are known at t."""

    timestamps: pd.DatetimeIndex
    symbols: list[str]
    returns: Array        # (T, N)
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
