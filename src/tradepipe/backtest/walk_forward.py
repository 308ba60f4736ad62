"""Walk-forward: refit on each window's training span only, trade its test slice, stitch the slices.

Window k tests bars in ``[s_k, s_k + test_years)`` with s_0 the first test date; its fit sees only bars in
``[train_start, s_k)`` less the last ``purge`` bars (label horizon + embargo), where train_start is
``s_k - train_years`` (rolling) or a fixed history start (expanding). The policy is then rolled out from
``warmup_bars`` before ``s_k`` (risk-manager state on data already known) and its decisions inside the slice
are kept. The stitched targets are executed once, so costs and drift carry across window boundaries.
The live window is the next one after the data: its fit is the policy to deploy, the one the walk-forward
metrics speak for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from tradepipe.config import BacktestWindowParams
from tradepipe.core.market import Market
from tradepipe.core.types import Array


class Policy(Protocol):
    def targets(self, market: Market) -> Array: ...


@dataclass(frozen=True)
class Window:
    """Bar positions: what the fit may see and what it trades."""

    train: slice
    test: slice

    def describe(self, timestamps: pd.DatetimeIndex) -> str:
        """Dates of the window, for logs."""
        def span(s: slice) -> str:
            return f"{timestamps[s.start].date()}..{timestamps[s.stop - 1].date()}" if s.stop > s.start else "live"
        return f"train {span(self.train)} | test {span(self.test)}"


def _train_start(timestamps: pd.DatetimeIndex, test_start: pd.Timestamp, cfg: BacktestWindowParams,
                 history_start: pd.Timestamp) -> int:
    fit_from = test_start - pd.DateOffset(years=cfg.train_years) if cfg.scheme == "rolling" else history_start
    return int(timestamps.searchsorted(fit_from))


def walk_forward_windows(timestamps: pd.DatetimeIndex, first_test: pd.Timestamp, cfg: BacktestWindowParams,
                         purge: int, history_start: pd.Timestamp) -> list[Window]:
    """The windows whose test slices tile ``[first_test, end]``; ValueError when one has too little history."""
    years = pd.DateOffset(years=cfg.test_years)
    windows = []
    start = first_test
    while (lo := int(timestamps.searchsorted(start))) < len(timestamps):
        hi = int(timestamps.searchsorted(start + years))
        train = slice(_train_start(timestamps, start, cfg, history_start), lo - purge)
        if train.stop - train.start < 2:
            raise ValueError(f"the walk-forward window testing from {timestamps[lo].date()} has no training bars "
                             f"before it; move split.val_end later or shorten backtest.walk_forward.train_years")
        windows.append(Window(train, slice(lo, hi)))
        start = start + years
    if not windows:
        raise ValueError(f"no bars after {first_test.date()} to test on; extend data.end")
    return windows


def live_window(timestamps: pd.DatetimeIndex, cfg: BacktestWindowParams, history_start: pd.Timestamp) -> Window:
    """The window after the last bar: it fits on the latest history (every bar known) and has nothing to test."""
    end = len(timestamps)
    start = _train_start(timestamps, timestamps[-1] + pd.Timedelta(days=1), cfg, history_start)
    return Window(slice(start, end), slice(end, end))


def walk_forward_targets(market: Market, windows: list[Window], fit: Callable[[Market, Window], Policy],
                         warmup_bars: int) -> Array:
    """Target weights (T, N) over ``market``: zero outside test slices, each slice from its own fit."""
    targets = np.zeros_like(market.returns)
    for window in windows:
        policy = fit(market.take(window.train), window)
        lo = max(0, window.test.start - warmup_bars)
        rolled = policy.targets(market.take(slice(lo, window.test.stop)))
        targets[window.test] = rolled[window.test.start - lo:]
    return targets
