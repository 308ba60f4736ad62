"""Walk-forward: refit on each window's training span only, trade its test slice, stitch the slices.

Window k tests bars in ``[s_k, s_k + test_years)`` with s_0 the first test date; its fit sees only bars in
``[train_start, s_k)`` less the last ``purge`` bars (label horizon + embargo), where train_start is
``s_k - train_years`` (rolling) or a fixed history start (expanding). The fits then trade one book
(:func:`stitched_book`): rolled out once from ``warmup_bars`` before the first slice (risk-manager state on data
already known), window k's fit proposing from s_k on, through one env and one risk manager whose state (breaker,
peak, stops, last weights) and book carry across every window boundary. The stitched targets are executed once,
so costs and drift carry across the boundaries too. The live window is the next one after the data: its fit is
the policy to deploy, the one the walk-forward metrics speak for.
"""

from __future__ import annotations

import copy
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradepipe.agents.policy import BarActor, PolicySpec, rollout_bars
from tradepipe.config import BacktestWindowParams
from tradepipe.core.market import Market
from tradepipe.core.types import Array
from tradepipe.envs.portfolio import Obs
from tradepipe.risk import RiskState


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


@dataclass(frozen=True)
class StitchedBook:
    """One book's risk-managed target weights (T, N) over a market (zero before its first slice), per slice a copy
    of the risk state its first decision started from (the book's own, carried from the slice before), and the asset
    weights the actors proposed before the risk manager ruled (T, N; zero before the first slice)."""

    targets: Array
    handover: list[RiskState]
    proposed: Array


def stitched_book(market: Market, spec: PolicySpec, slices: list[tuple[int, BarActor]], warmup_bars: int
                  ) -> StitchedBook:
    """One book over ``market``: each ``(start, actor)`` of ``slices`` (by start bar, ascending) proposes from its
    start bar until the next one's (``actor(t, obs)``, t a bar of ``market``), the first one also over the
    ``warmup_bars`` before it (decisions dropped). One rollout (``agents.policy.rollout_bars``) through one env and
    one risk manager over the bars from the warm-up on, so nothing restarts at a slice boundary."""
    starts = [start for start, _ in slices]
    lo = max(0, starts[0] - warmup_bars)
    history = market.take(slice(lo, None))
    risk = spec.risk_manager(history)
    state = risk.start(1)
    handover: list[RiskState] = []
    proposed = np.zeros_like(market.returns)

    def act(t: int, obs: Obs) -> Array:
        k = bisect_right(starts, lo + t) - 1
        while len(handover) <= k:  # the first decision of slice k: the state it inherits
            handover.append(copy.deepcopy(state))
        book = slices[max(k, 0)][1](lo + t, obs)
        proposed[lo + t] = book[0, :-1]
        return book

    targets = np.zeros_like(market.returns)
    targets[lo:] = rollout_bars(act, spec.env(history), risk, state=state)
    targets[:starts[0]] = proposed[:starts[0]] = 0.0
    return StitchedBook(targets, handover, proposed)


def walk_forward_book(market: Market, windows: list[Window], fit: Callable[[Market, Window], BarActor],
                      spec: PolicySpec, warmup_bars: int) -> StitchedBook:
    """The book over ``market`` whose window k is traded by ``fit(market.take(train_k), window_k)``: zero outside
    the test slices (which tile the span to the end of ``market``), one :func:`stitched_book` across them."""
    return stitched_book(market, spec, [(w.test.start, fit(market.take(w.train), w)) for w in windows], warmup_bars)
