"""The newest feature row of a universe from its symbols' price arrays: the values ``build_features`` gives there.

A live decision needs the features of its newest bar only. Every transform is causal, but TA-Lib's indicators carry
state from the first bar they see, so each is computed by the same function on the same arrays (oldest first, from
the account's anchor) and the last value is kept: C speed, no frames. The realized volatility depends on its own
window only (``build.trailing_std``): it is computed from each symbol's last ``window + 1`` closes, all symbols in one
call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tradepipe.config import FeatureParams
from tradepipe.core.types import Array
from tradepipe.features.build import feature_columns, indicator_names, realized_vol
from tradepipe.features.indicators import INDICATORS, Prices

__all__ = ["newest_features"]


def _rvol(log_closes: Sequence[Array], window: int) -> Array:
    """``realized_vol`` at each symbol's last bar, from its last ``window + 1`` log closes (the same bits)."""
    out = np.full(len(log_closes), np.nan)
    long = [j for j, lc in enumerate(log_closes) if len(lc) > window]
    if long:
        tails = np.stack([log_closes[j][-window - 1:] for j in long], axis=1)  # (window + 1, symbols)
        out[long] = realized_vol(tails, window)[-1]
    return out


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
