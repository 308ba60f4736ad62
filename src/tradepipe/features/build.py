"""Build the feature table (causal) and the label table (the one forward-looking column), kept apart."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradepipe.config import FeatureParams
from tradepipe.features.indicators import INDICATORS, Prices


def feature_columns(params: FeatureParams) -> list[str]:
    """Names of the feature columns, in the order they are built."""
    unknown = sorted(set(params.indicators) - set(INDICATORS))
    if unknown:
        raise ValueError(f"features.indicators {unknown} are unknown; choose from {sorted(INDICATORS)}")
    returns = [f"logret_{h}" for h in params.return_horizons]
    return [*params.indicators, *returns, f"rvol_{params.volatility_window}"]


def _prices(group: pd.DataFrame) -> Prices:
    def col(name: str) -> np.ndarray | None:
        if name not in group or group[name].isna().all():
            return None
        return group[name].to_numpy(dtype=np.float64)

    return Prices(close=group["close"].to_numpy(dtype=np.float64), high=col("high"), low=col("low"),
                  volume=col("volume"))


def _symbol_features(group: pd.DataFrame, params: FeatureParams) -> pd.DataFrame:
    prices = _prices(group)
    log_close = np.log(prices.close)
    out = {name: INDICATORS[name](prices) for name in params.indicators}
    for h in params.return_horizons:
        out[f"logret_{h}"] = log_close - pd.Series(log_close).shift(h).to_numpy()
    ret1 = pd.Series(log_close).diff()
    window = params.volatility_window
    out[f"rvol_{window}"] = (ret1.rolling(window).std() * np.sqrt(252)).to_numpy()
    frame = pd.DataFrame(out, index=group.index)
    return frame.replace([np.inf, -np.inf], np.nan)


def build_features(bars: pd.DataFrame, params: FeatureParams) -> pd.DataFrame:
    """Features per (timestamp, symbol); each value uses only bars at or before its timestamp."""
    columns = feature_columns(params)
    bars = bars.sort_values(["symbol", "timestamp"], kind="stable")
    parts = [_symbol_features(group, params) for _, group in bars.groupby("symbol", sort=True)]
    feats = pd.concat(parts)[columns]
    out = pd.concat([bars[["timestamp", "symbol"]], feats], axis=1)
    return out.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)


def build_labels(bars: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Forward log return over ``horizon`` bars per (timestamp, symbol): the only look-ahead column."""
    bars = bars.sort_values(["symbol", "timestamp"], kind="stable")
    log_close = np.log(bars["close"])
    fwd = log_close.groupby(bars["symbol"]).shift(-horizon) - log_close
    out = bars[["timestamp", "symbol"]].assign(**{f"fwd_logret_{horizon}": fwd})
    return out.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)
