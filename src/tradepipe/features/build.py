"""Build the feature table (causal) and the label table (the one forward-looking column), kept apart."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradepipe.config import FeatureParams
from tradepipe.features.indicators import INDICATORS, Prices
from tradepipe.features.sentiment import COLUMNS as SENTIMENT
from tradepipe.features.sentiment import read_headlines, sentiment_features


def indicator_names(params: FeatureParams) -> list[str]:
    """The indicators built: the close-only list, plus the OHLCV list when ``params.ohlcv`` is true."""
    names = [*params.indicators, *(params.ohlcv_indicators if params.ohlcv else [])]
    unknown = sorted(set(names) - set(INDICATORS))
    if unknown:
        raise ValueError(f"features.indicators {unknown} are unknown; choose from {sorted(INDICATORS)}")
    misplaced = [n for n in params.indicators if not INDICATORS[n].close_only]
    if misplaced:
        raise ValueError(f"features.indicators {misplaced} need more than the close; "
                         "list them under features.ohlcv_indicators")
    return names


def feature_columns(params: FeatureParams) -> list[str]:
    """Names of the feature columns, in the order they are built."""
    base = [*indicator_names(params), *(f"logret_{h}" for h in params.return_horizons),
            f"rvol_{params.volatility_window}", *(SENTIMENT if params.sentiment.path else ())]
    unknown = sorted(set(params.ranks) - set(base))
    if unknown:
        raise ValueError(f"features.ranks {unknown} are not features; choose from {base}")
    return [*base, *(f"xrank_{name}" for name in params.ranks)]


def trailing_std(values: np.ndarray, window: int) -> np.ndarray:
    """Sample standard deviation (ddof 1) along axis 0 of each row and the ``window - 1`` rows before it (NaN where
    fewer rows precede it or its window holds a NaN). Sums run in one fixed order, element by element, so a value's
    bits depend on its own window only: the last window alone gives the last value of the whole series exactly."""
    out = np.full(values.shape, np.nan)
    n = len(values) - window + 1
    if n <= 0:
        return out
    views = [values[k:k + n] for k in range(window)]
    total = views[0].copy()
    for view in views[1:]:
        total += view
    mean = total / window
    squares = (views[0] - mean) ** 2
    for view in views[1:]:
        squares += (view - mean) ** 2
    out[window - 1:] = np.sqrt(squares / (window - 1))
    return out


def realized_vol(log_close: np.ndarray, window: int) -> np.ndarray:
    """Annualized volatility of the log returns over the trailing ``window`` bars, at each bar of ``log_close``
    (along axis 0; an infinite return counts as missing)."""
    returns = np.full(log_close.shape, np.nan)
    returns[1:] = np.diff(log_close, axis=0)
    returns[np.isinf(returns)] = np.nan
    return trailing_std(returns, window) * np.sqrt(252)


def _prices(group: pd.DataFrame) -> Prices:
    def col(name: str) -> np.ndarray | None:
        if name not in group or group[name].isna().all():
            return None
        return group[name].to_numpy(dtype=np.float64)

    return Prices(close=group["close"].to_numpy(dtype=np.float64), high=col("high"), low=col("low"),
                  volume=col("volume"), open=col("open"))


def _symbol_features(group: pd.DataFrame, params: FeatureParams, names: list[str]) -> pd.DataFrame:
    prices = _prices(group)
    log_close = np.log(prices.close)
    out = {name: INDICATORS[name].fn(prices) for name in names}
    for h in params.return_horizons:
        out[f"logret_{h}"] = log_close - pd.Series(log_close).shift(h).to_numpy()
    window = params.volatility_window
    out[f"rvol_{window}"] = realized_vol(log_close, window)
    frame = pd.DataFrame(out, index=group.index)
    return frame.replace([np.inf, -np.inf], np.nan)


def cross_sectional_ranks(feats: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rank of each value among the symbols at the same timestamp, scaled to [-0.5, 0.5] (0 when alone)."""
    by_time = feats.groupby("timestamp")[columns]
    ranks = by_time.rank(method="average")
    count = by_time.transform("count")
    scaled = (ranks - 1).div((count - 1).where(count > 1)) - 0.5
    scaled = scaled.mask((count == 1) & feats[columns].notna(), 0.0)
    return scaled.rename(columns=lambda c: f"xrank_{c}")


def build_features(bars: pd.DataFrame, params: FeatureParams, headlines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features per (timestamp, symbol); each value uses only bars (and headlines) at or before its timestamp.

    Headlines are read from ``params.sentiment.path`` when sentiment is configured and none are passed.
    """
    columns = feature_columns(params)
    names = indicator_names(params)
    if params.ohlcv:
        lacking = [c for c in ("open", "high", "low", "volume") if c not in bars or bars[c].isna().all()]
        needed = sorted({c for n in names for c in INDICATORS[n].inputs} & set(lacking))
        if needed:
            raise ValueError(f"features.ohlcv is true but the bars have no {needed} column(s); set "
                             "features.ohlcv: false (close-only indicators) or use a source with OHLCV bars")
    bars = bars.sort_values(["symbol", "timestamp"], kind="stable")
    parts = [_symbol_features(group, params, names) for _, group in bars.groupby("symbol", sort=True)]
    feats = pd.concat([bars[["timestamp", "symbol"]], pd.concat(parts)], axis=1)
    if params.sentiment.path:
        headlines = read_headlines(params.sentiment) if headlines is None else headlines
        feats = pd.concat([feats, sentiment_features(bars, headlines, params.sentiment)], axis=1)
    if params.ranks:
        feats = pd.concat([feats, cross_sectional_ranks(feats, params.ranks)], axis=1)
    out = feats[["timestamp", "symbol", *columns]]
    return out.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)


def build_labels(bars: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Forward log return over ``horizon`` bars per (timestamp, symbol): the only look-ahead column."""
    bars = bars.sort_values(["symbol", "timestamp"], kind="stable")
    log_close = np.log(bars["close"])
    fwd = log_close.groupby(bars["symbol"]).shift(-horizon) - log_close
    out = bars[["timestamp", "symbol"]].assign(**{f"fwd_logret_{horizon}": fwd})
    return out.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)
