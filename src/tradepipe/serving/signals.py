"""From request bars to target weights: the checks a request must pass, then the policy's decision."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import FeatureParams
from tradepipe.features import build_features, feature_columns
from tradepipe.serving.limits import preview, truncate

_PROBE_BARS = 2000


class BadRequest(ValueError):
    """The request cannot be answered as sent; the message says what to change."""


def feature_warmup(features: FeatureParams) -> int:
    """Bars a symbol needs before every feature of the recipe is defined (probed on a synthetic price path)."""
    rng = np.random.default_rng(0)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, _PROBE_BARS)))
    stamps = pd.date_range("2000-01-03", periods=_PROBE_BARS, freq="D", tz="UTC")
    probe = pd.DataFrame({"timestamp": stamps, "symbol": "X", "open": close, "high": close * 1.01,
                          "low": close * 0.99, "close": close, "volume": rng.uniform(1e5, 1e6, _PROBE_BARS)})
    feats = build_features(probe, features)
    complete = feats[feature_columns(features)].notna().all(axis=1).to_numpy()
    return int(np.argmax(complete)) + 1


def min_bars(policy: TradingPolicy) -> int:
    """Fewest bars per symbol for the last decision to see complete features, a forecast and its look-back."""
    return feature_warmup(policy.predictor.features) - 1 + max(policy.predictor.seq_len, policy.spec.lookback)


def check_bars(bars: pd.DataFrame, policy: TradingPolicy, needed: int) -> None:
    """Raise BadRequest unless ``bars`` hold the policy's universe, each symbol with enough unique bars."""
    symbols = set(bars["symbol"].unique())
    unknown, missing = sorted(symbols - set(policy.spec.symbols)), sorted(set(policy.spec.symbols) - symbols)
    if unknown or missing:
        raise BadRequest(f"the model trades exactly {preview(policy.spec.symbols)}; "
                         f"unknown symbols: {preview(unknown)}; missing symbols: {preview(missing)}")
    dup = bars.duplicated(["timestamp", "symbol"])
    if dup.any():
        first = bars[dup].iloc[0]
        raise BadRequest(f"{int(dup.sum())} duplicate (timestamp, symbol) bars, e.g. {truncate(first['symbol'])} at "
                         f"{first['timestamp'].isoformat()}")
    counts = bars.groupby("symbol")["timestamp"].agg(["size", "max"])
    short = counts.index[counts["size"] < needed].tolist()
    if short:
        raise BadRequest(f"too few bars for the feature warm-up: the model needs at least {needed} bars per symbol; "
                         f"got {preview(f'{s}: {n}' for s, n in counts.loc[short, 'size'].items())}")
    if counts["max"].nunique() > 1:
        raise BadRequest(f"every symbol must end at the same timestamp; last bars: "
                         f"{preview(f'{s}: {t.isoformat()}' for s, t in counts['max'].items())}")
