"""A catalog of TA-Lib indicators, each made scale-free so that one model can read every symbol.

Every entry maps a symbol's price arrays (oldest first) to one array of the same length and declares its
family (trend, momentum, volatility, volume) and the inputs it needs. TA-Lib computes each value from the
bars at or before it, so every indicator here is causal; tests prove it for the whole catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import talib

from tradepipe.core.types import Array

Family = Literal["trend", "momentum", "volatility", "volume"]
CLOSE, HLC, OHLC, HLCV = ("close",), ("high", "low", "close"), ("open", "high", "low", "close"), \
    ("high", "low", "close", "volume")


@dataclass(frozen=True)
class Prices:
    """One symbol's price arrays; open/high/low/volume are None for close-only sources."""

    close: Array
    high: Array | None = None
    low: Array | None = None
    volume: Array | None = None
    open: Array | None = None

    @property
    def h(self) -> Array:
        return _need(self.high, "high")

    @property
    def lo(self) -> Array:
        return _need(self.low, "low")

    @property
    def v(self) -> Array:
        return _need(self.volume, "volume")

    @property
    def o(self) -> Array:
        return _need(self.open, "open")


def _need(values: Array | None, name: str) -> Array:
    if values is None:
        raise ValueError(f"this indicator needs the {name!r} column, which the bars lack")
    return values


@dataclass(frozen=True)
class Indicator:
    """One catalog entry: the function, its family and the bar columns it reads."""

    fn: Callable[[Prices], Array]
    family: Family
    inputs: tuple[str, ...] = CLOSE

    @property
    def close_only(self) -> bool:
        return self.inputs == CLOSE


def _ratio(num: Array, den: Array) -> Array:
    return np.divide(num, den, out=np.full_like(num, np.nan), where=np.isfinite(den) & (den != 0))


def _bbands_pctb(p: Prices) -> Array:
    upper, _, lower = talib.BBANDS(p.close, timeperiod=20)
    return _ratio(p.close - lower, upper - lower)


def _bbands_width(p: Prices) -> Array:
    upper, middle, lower = talib.BBANDS(p.close, timeperiod=20)
    return _ratio(upper - lower, middle)


def _flow(series: Array, volume: Array, window: int) -> Array:
    """Change of a volume-weighted running total over ``window`` bars per unit of volume traded then."""
    change = series - np.concatenate([np.full(window, np.nan), series[:-window]])
    return _ratio(change, talib.SUM(volume, timeperiod=window))


INDICATORS: dict[str, Indicator] = {
    # trend
    "macd_hist": Indicator(lambda p: talib.MACD(p.close)[2] / p.close, "trend"),
    "apo_ratio": Indicator(lambda p: talib.APO(p.close, fastperiod=12, slowperiod=26) / p.close, "trend"),
    "sma_ratio_50": Indicator(lambda p: p.close / talib.SMA(p.close, timeperiod=50) - 1.0, "trend"),
    "sma_ratio_200": Indicator(lambda p: p.close / talib.SMA(p.close, timeperiod=200) - 1.0, "trend"),
    "ema_ratio_20": Indicator(lambda p: p.close / talib.EMA(p.close, timeperiod=20) - 1.0, "trend"),
    "dema_ratio_20": Indicator(lambda p: p.close / talib.DEMA(p.close, timeperiod=20) - 1.0, "trend"),
    "kama_ratio_30": Indicator(lambda p: p.close / talib.KAMA(p.close, timeperiod=30) - 1.0, "trend"),
    "trix_15": Indicator(lambda p: talib.TRIX(p.close, timeperiod=15), "trend"),
    "linreg_slope_20": Indicator(lambda p: talib.LINEARREG_SLOPE(p.close, timeperiod=20) / p.close, "trend"),
    "adx_14": Indicator(lambda p: talib.ADX(p.h, p.lo, p.close, timeperiod=14) / 100.0, "trend", HLC),
    "di_spread_14": Indicator(lambda p: (talib.PLUS_DI(p.h, p.lo, p.close, timeperiod=14)
                                         - talib.MINUS_DI(p.h, p.lo, p.close, timeperiod=14)) / 100.0, "trend", HLC),
    "aroonosc_14": Indicator(lambda p: talib.AROONOSC(p.h, p.lo, timeperiod=14) / 100.0, "trend", HLC),
    # momentum
    "rsi_14": Indicator(lambda p: talib.RSI(p.close, timeperiod=14) / 100.0 - 0.5, "momentum"),
    "cmo_14": Indicator(lambda p: talib.CMO(p.close, timeperiod=14) / 100.0, "momentum"),
    "roc_10": Indicator(lambda p: talib.ROC(p.close, timeperiod=10) / 100.0, "momentum"),
    "mom_ratio_10": Indicator(lambda p: talib.MOM(p.close, timeperiod=10) / p.close, "momentum"),
    "ppo_12_26": Indicator(lambda p: talib.PPO(p.close, fastperiod=12, slowperiod=26) / 100.0, "momentum"),
    "stochrsi_14": Indicator(lambda p: talib.STOCHRSI(p.close, timeperiod=14)[0] / 100.0 - 0.5, "momentum"),
    "cci_20": Indicator(lambda p: talib.CCI(p.h, p.lo, p.close, timeperiod=20) / 100.0, "momentum", HLC),
    "stoch_k": Indicator(lambda p: talib.STOCH(p.h, p.lo, p.close)[0] / 100.0 - 0.5, "momentum", HLC),
    "willr_14": Indicator(lambda p: talib.WILLR(p.h, p.lo, p.close, timeperiod=14) / 100.0 + 0.5, "momentum", HLC),
    "ultosc": Indicator(lambda p: talib.ULTOSC(p.h, p.lo, p.close) / 100.0 - 0.5, "momentum", HLC),
    "bop": Indicator(lambda p: talib.BOP(p.o, p.h, p.lo, p.close), "momentum", OHLC),
    # volatility
    "bbands_pctb_20": Indicator(_bbands_pctb, "volatility"),
    "bbands_width_20": Indicator(_bbands_width, "volatility"),
    "stddev_ratio_20": Indicator(lambda p: talib.STDDEV(p.close, timeperiod=20) / p.close, "volatility"),
    "natr_14": Indicator(lambda p: talib.NATR(p.h, p.lo, p.close, timeperiod=14) / 100.0, "volatility", HLC),
    "trange_ratio": Indicator(lambda p: talib.TRANGE(p.h, p.lo, p.close) / p.close, "volatility", HLC),
    # volume
    "mfi_14": Indicator(lambda p: talib.MFI(p.h, p.lo, p.close, p.v, timeperiod=14) / 100.0 - 0.5, "volume", HLCV),
    "obv_flow_20": Indicator(lambda p: _flow(talib.OBV(p.close, p.v), p.v, 20), "volume", ("close", "volume")),
    "ad_flow_20": Indicator(lambda p: _flow(talib.AD(p.h, p.lo, p.close, p.v), p.v, 20), "volume", HLCV),
    "adosc_ratio": Indicator(lambda p: _ratio(talib.ADOSC(p.h, p.lo, p.close, p.v), talib.SMA(p.v, timeperiod=10)),
                             "volume", HLCV),
    "volume_ratio_20": Indicator(lambda p: _ratio(p.v, talib.SMA(p.v, timeperiod=20)) - 1.0, "volume",
                                 ("close", "volume")),
}
