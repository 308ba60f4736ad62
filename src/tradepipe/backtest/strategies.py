"""Target-weight schedules of the reference strategies, all executed by the same engine and costs."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tradepipe.core.types import Array


def equal_weight(n_bars: int, n_assets: int) -> Array:
    """1/N in every asset, rebalanced every bar."""
    return np.full((n_bars, n_assets), 1.0 / n_assets)


def periodic_rebalance(targets: Array, returns: Array, rebalance: npt.NDArray[np.bool_]) -> Array:
    """Trade to ``targets`` only on bars where ``rebalance`` is True; in between, let the weights drift.

    The engine fills a target decided at t at close t+1, so between rebalances the target decided at t is
    the book drifted through bar t+1 (the book the engine would otherwise hold), and no trade happens.
    """
    out = np.zeros_like(targets)
    book = np.zeros(targets.shape[1])
    for t in range(len(targets)):
        if t + 1 < len(targets):
            grown = book * (1.0 + returns[t + 1])
            drifted = grown / (1.0 + (book * returns[t + 1]).sum())
        else:
            drifted = book
        book = targets[t] if rebalance[t] else drifted
        out[t] = book
    return out


def month_starts(timestamps: pd.DatetimeIndex) -> npt.NDArray[np.bool_]:
    """True on the first bar of each calendar month (and on the first bar)."""
    months = timestamps.to_period("M") if timestamps.tz is None else timestamps.tz_localize(None).to_period("M")
    flags = np.ones(len(timestamps), dtype=bool)
    flags[1:] = months[1:] != months[:-1]
    return flags


def top_k_forecast(predictions: npt.NDArray[np.floating[Any]], k: int) -> Array:
    """Equal weight in the ``k`` assets with the highest forecast at each bar (cash when none is positive)."""
    ranks = np.argsort(-predictions, axis=1)[:, :k]
    out = np.zeros_like(predictions, dtype=np.float64)
    np.put_along_axis(out, ranks, 1.0 / k, axis=1)
    out[~(predictions > 0).any(axis=1)] = 0.0
    return out
