"""The newest feature row of a universe from its symbols' price arrays: the values ``build_features`` gives there.

A live decision needs the features of its newest bar only. Every transform is causal, but TA-Lib's indicators and
pandas' rolling variance carry state from the first bar they see, so each value is computed by the same function
on the same arrays (oldest first, from the account's anchor) and the last one is kept: C speed, no frames. The
realized volatility of all symbols comes from one call of pandas' own rolling-variance kernel (the one
``Series.rolling(w).std()`` runs) over the symbols' returns laid end to end: a window never spans two symbols, so
each symbol's values are those of its own rolling call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pandas._libs.window.aggregations import roll_var

from tradepipe.config import FeatureParams
from tradepipe.core.types import Array
from tradepipe.features.build import feature_columns, indicator_names
from tradepipe.features.indicators import INDICATORS, Prices

__all__ = ["newest_features"]


def _rvol(log_closes: Sequence[Array], window: int) -> Array:
    """``(diff(log close).rolling(window).std() * sqrt(252))`` at each symbol's last bar, bit for bit."""
    values = np.concatenate([np.concatenate([[np.nan], np.diff(lc)]) for lc in log_closes])
    values[np.isinf(values)] = np.nan  # as pandas prepares the values for its kernels
    ends = np.concatenate([np.arange(1, len(lc) + 1) for lc in log_closes]).astype(np.int64)
    offsets = np.repeat(np.cumsum([0, *(len(lc) for lc in log_closes[:-1])]), [len(lc) for lc in log_closes])
    start = (offsets + np.maximum(ends - window, 0)).astype(np.int64)
    var = roll_var(values, start, offsets + ends, window, ddof=1)
    last = np.cumsum([len(lc) for lc in log_closes]) - 1
    with np.errstate(invalid="ignore"):
        std = np.sqrt(var[last])
    return np.where(var[last] < 0, 0.0, std) * np.sqrt(252)


def _ranks(values: Array) -> Array:
    """``cross_sectional_ranks`` of one timestamp's values (N, K): average ranks among the non-NaN, in [-0.5, 0.5]."""
    out = np.full(values.shape, np.nan)
    for k in range(values.shape[1]):
        v = values[:, k]
        ok = ~np.isnan(v)
        count = int(ok.sum())
        if count == 1:
            out[ok, k] = 0.0
        elif count > 1:
            x = v[ok]
            less = (x[None, :] < x[:, None]).sum(axis=1)
            equal = (x[None, :] == x[:, None]).sum(axis=1)
            out[ok, k] = (less + (equal + 1) / 2.0 - 1.0) / (count - 1) - 0.5
    return out


def newest_features(prices: Sequence[Prices], params: FeatureParams) -> Array:
    """Features (N, F; ``feature_columns`` order) at the last bar of each symbol's ``prices``, symbols in order.

    Sentiment features need headlines and are not computed here (ValueError: use ``build_features``).
    """
    if params.sentiment.path:
        raise ValueError("newest_features does not read headlines: build sentiment features with build_features")
    names = indicator_names(params)
    base = [*names, *(f"logret_{h}" for h in params.return_horizons), f"rvol_{params.volatility_window}"]
    out = np.empty((len(prices), len(base)))
    log_closes = [np.log(p.close) for p in prices]
    for j, (p, lc) in enumerate(zip(prices, log_closes, strict=True)):
        for i, name in enumerate(names):
            out[j, i] = INDICATORS[name].fn(p)[-1]
        for i, h in enumerate(params.return_horizons, start=len(names)):
            out[j, i] = lc[-1] - lc[-1 - h] if len(lc) > h else np.nan
    out[:, -1] = _rvol(log_closes, params.volatility_window)
    out[~np.isfinite(out)] = np.nan
    ranked = _ranks(out[:, [base.index(name) for name in params.ranks]]) if params.ranks else np.empty((len(out), 0))
    columns = np.concatenate([out, ranked], axis=1)
    assert columns.shape[1] == len(feature_columns(params))
    return columns
