"""A catalog of TA-Lib indicators, each made scale-free so that one model can read every symbol.

Every entry maps a symbol's price arrays (oldest first) to one array of the same length. TA-Lib computes
each value from the bars at or before it, so every indicator here is causal; tests prove it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import talib

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Prices:
    """One symbol's price arrays; high/low/volume are None for close-only sources."""

    close: Array
    high: Array | None = None
    low: Array | None = None
    volume: Array | None = None


Indicator = Callable[[Prices], Array]


def _bbands_pctb(p: Prices) -> Array:
    upper, _, lower = talib.BBANDS(p.close, timeperiod=20)
    width = upper - lower
    return np.divide(p.close - lower, width, out=np.full_like(width, np.nan), where=width > 0)


INDICATORS: dict[str, Indicator] = {
    "rsi_14": lambda p: talib.RSI(p.close, timeperiod=14) / 100.0 - 0.5,
    "cmo_14": lambda p: talib.CMO(p.close, timeperiod=14) / 100.0,
    "macd_hist": lambda p: talib.MACD(p.close)[2] / p.close,
    "apo_ratio": lambda p: talib.APO(p.close, fastperiod=12, slowperiod=26) / p.close,
    "bbands_pctb_20": _bbands_pctb,
    "roc_10": lambda p: talib.ROC(p.close, timeperiod=10) / 100.0,
    "mom_ratio_10": lambda p: talib.MOM(p.close, timeperiod=10) / p.close,
    "sma_ratio_50": lambda p: p.close / talib.SMA(p.close, timeperiod=50) - 1.0,
    "sma_ratio_200": lambda p: p.close / talib.SMA(p.close, timeperiod=200) - 1.0,
    "ema_ratio_20": lambda p: p.close / talib.EMA(p.close, timeperiod=20) - 1.0,
    "stddev_ratio_20": lambda p: talib.STDDEV(p.close, timeperiod=20) / p.close,
    "trix_15": lambda p: talib.TRIX(p.close, timeperiod=15),
    "linreg_slope_20": lambda p: talib.LINEARREG_SLOPE(p.close, timeperiod=20) / p.close,
}
