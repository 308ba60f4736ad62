"""Walk-forward windows and stitching: each slice is traded by a fit that saw only its own past."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from tradepipe.agents.policy import BarActor, PolicySpec, rollout_bars
from tradepipe.backtest.walk_forward import (
    StitchedBook,
    Window,
    live_window,
    stitched_book,
    walk_forward_book,
    walk_forward_windows,
)
from tradepipe.config import BacktestWindowParams, RiskParams
from tradepipe.core.market import Market
from tradepipe.core.types import F32
from tradepipe.risk import RiskState

DAYS = pd.bdate_range("2010-01-01", "2016-12-31", tz="UTC")


def _market(seed: int = 0) -> Market:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, 0.01, (len(DAYS), 3))
    features = rng.normal(size=(len(DAYS), 3, 2)).astype(np.float32)
    return Market(DAYS, ["A", "B", "C"], returns, features, np.zeros((len(DAYS), 3), np.float32))


class MeanPolicy:
    """Long the assets whose training-window mean return is positive, scaled by the observed feature 0."""

    def __init__(self, train: Market) -> None:
        self.long = (train.returns.mean(axis=0) > 0).astype(float)
        self.n_features = train.features.shape[2]

    def __call__(self, _t: int, obs: F32) -> np.ndarray:
        assets = self.long * (1.0 + np.tanh(obs[0, :len(self.long) * self.n_features:self.n_features])) / 6.0
        return np.array([[*assets, 1.0 - assets.sum()]])


def test_windows_tile_the_test_span_and_purge_the_training_tail() -> None:
    cfg = BacktestWindowParams(scheme="rolling", train_years=2, test_years=1)
    windows = walk_forward_windows(DAYS, pd.Timestamp("2013-01-01", tz="UTC"), cfg, purge=5,
                                   history_start=pd.Timestamp("2010-01-01", tz="UTC"))
    assert [DAYS[w.test.start].year for w in windows] == [2013, 2014, 2015, 2016]
    assert windows[-1].test.stop == len(DAYS)
    for w, nxt in zip(windows, windows[1:], strict=False):
        assert w.test.stop == nxt.test.start                 # slices are contiguous, no bar twice
    for w in windows:
        assert w.train.stop == w.test.start - 5               # purge before each test slice
        assert DAYS[w.train.start].year == DAYS[w.test.start].year - 2
    expanding = walk_forward_windows(DAYS, pd.Timestamp("2013-01-01", tz="UTC"),
                                     BacktestWindowParams(scheme="expanding", test_years=2), purge=0,
                                     history_start=pd.Timestamp("2011-01-01", tz="UTC"))
    assert [w.train.start for w in expanding] == [DAYS.searchsorted(pd.Timestamp("2011-01-01", tz="UTC"))] * 2
    assert [DAYS[w.test.start].year for w in expanding] == [2013, 2015]


def test_live_window_fits_on_the_latest_history_like_the_next_window_would() -> None:
    rolling = live_window(DAYS, BacktestWindowParams(scheme="rolling", train_years=2), DAYS[0])
    assert rolling.train.stop == len(DAYS) and rolling.test == slice(len(DAYS), len(DAYS))
    assert DAYS[rolling.train.start] == pd.Timestamp("2014-12-31", tz="UTC")  # two years before the next bar
    history = pd.Timestamp("2011-06-01", tz="UTC")
    expanding = live_window(DAYS, BacktestWindowParams(scheme="expanding"), history)
    assert expanding.train == slice(int(DAYS.searchsorted(history)), len(DAYS))
    assert expanding.describe(DAYS) == "train 2011-06-01..2016-12-30 | test live"


def test_windows_refuse_a_test_slice_without_history() -> None:
    with pytest.raises(ValueError, match="no training bars"):
        walk_forward_windows(DAYS, DAYS[0], BacktestWindowParams(), purge=5, history_start=DAYS[0])
    with pytest.raises(ValueError, match="extend data.end"):
        walk_forward_windows(DAYS, pd.Timestamp("2020-01-01", tz="UTC"), BacktestWindowParams(), purge=0,
                             history_start=DAYS[0])


CFG = BacktestWindowParams(train_years=1, test_years=1, warmup_bars=10)
SPEC = PolicySpec(["A", "B", "C"], 1, 0.001)


def _windows(market: Market) -> list[Window]:
    return walk_forward_windows(market.timestamps, pd.Timestamp("2012-01-01", tz="UTC"), CFG, purge=3,
                                history_start=market.timestamps[0])


def _book(market: Market, seen: list[tuple[pd.Timestamp, pd.Timestamp]], spec: PolicySpec = SPEC) -> StitchedBook:
    def fit(train: Market, window: Window) -> BarActor:
        seen.append((train.timestamps[-1], market.timestamps[window.test.start]))
        return MeanPolicy(train)

    return walk_forward_book(market, _windows(market), fit, spec, CFG.warmup_bars)


def _run(market: Market, seen: list[tuple[pd.Timestamp, pd.Timestamp]]) -> np.ndarray:
    return _book(market, seen).targets


def test_each_fit_sees_only_bars_before_its_slice() -> None:
    seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    targets = _run(_market(), seen)
    assert len(seen) == 5 and all(last < first for last, first in seen)
    assert np.all(targets[: DAYS.searchsorted(pd.Timestamp("2012-01-01", tz="UTC"))] == 0.0)
    assert (targets.sum(axis=1)[-100:] > 0).any()


def test_perturbing_the_future_leaves_every_earlier_decision_unchanged() -> None:
    market = _market()
    cut = DAYS.searchsorted(pd.Timestamp("2014-07-01", tz="UTC"))
    rng = np.random.default_rng(9)
    future = Market(market.timestamps, market.symbols,
                    np.concatenate([market.returns[:cut], rng.normal(0.01, 0.03, market.returns[cut:].shape)]),
                    np.concatenate([market.features[:cut], -market.features[cut:]]), market.predictions)
    before, after = _run(market, []), _run(future, [])
    np.testing.assert_array_equal(before[:cut], after[:cut])
    assert not np.allclose(before[cut:], after[cut:])


def _assert_same_state(got: RiskState, want: RiskState) -> None:
    for f in fields(RiskState):
        np.testing.assert_array_equal(getattr(got, f.name), getattr(want, f.name), err_msg=f.name)


def test_the_stitched_book_hands_the_next_window_the_risk_state_continued_from_the_one_before() -> None:
    market = _market()
    windows = _windows(market)
    book = _book(market, [])
    assert len(book.handover) == len(windows)
    lo, (first, boundary) = windows[0].test.start - CFG.warmup_bars, (w.test.start for w in windows[:2])
    # window 0's fit alone, from the warm-up up to the boundary: the state after its last decision
    state, history = RiskState.start(1, 3), market.take(slice(lo, boundary))
    alone = rollout_bars(MeanPolicy(market.take(windows[0].train)), SPEC.env(history), SPEC.risk_manager(history),
                         state=state)
    np.testing.assert_array_equal(book.targets[first:boundary], alone[first - lo:])
    _assert_same_state(book.handover[1], state)                       # window 1's first decision starts from it
    assert book.handover[1].peak[0] != 1.0 and book.handover[1].last[0].sum() > 0   # carried, not a fresh state
    assert np.isfinite(book.handover[1].entry[0]).any()               # open positions keep their entry prices


def test_the_stitched_book_keeps_what_its_actors_proposed_before_the_risk_manager() -> None:
    market = _market()
    first = _windows(market)[0].test.start
    book = _book(market, [])
    assert np.all(book.proposed[:first] == 0.0) and np.all(book.proposed[first:] >= 0.0)
    assert not np.allclose(book.proposed[first:], book.targets[first:])   # vol targeting scales the books down
    loose = RiskParams(max_weight=1.0, target_vol=None, max_drawdown=None, stop_loss=None, take_profit=None,
                       turbulence_quantile=None)
    free = _book(market, [], PolicySpec(["A", "B", "C"], 1, 0.001, risk=loose))
    np.testing.assert_array_equal(free.proposed, free.targets)        # no rule binds: decided as proposed


def test_a_breaker_tripped_before_a_boundary_keeps_the_next_window_in_cash() -> None:
    market = _market()
    windows = _windows(market)
    boundary = windows[2].test.start
    crashed = market.returns + 0.002                                  # drift up: every fit is long every asset
    crashed[boundary - 1] = -0.3                                      # every asset falls 30% the bar before
    market = Market(market.timestamps, market.symbols, crashed, market.features, market.predictions)
    risk = RiskParams(target_vol=None, turbulence_quantile=None, stop_loss=None, max_drawdown=0.1,
                      breaker_cooldown=5, max_weight=0.5)
    spec = PolicySpec(["A", "B", "C"], 1, 0.001, risk=risk)
    book = _book(market, [], spec)
    assert book.handover[2].breaker_left[0] == 5                       # tripped at boundary - 1 (cooldown 5)
    assert np.all(book.targets[boundary:boundary + 4] == 0.0) and book.targets[boundary + 4].sum() > 0
    restarted = stitched_book(market, spec, [(boundary, MeanPolicy(market.take(windows[2].train)))], 0)
    assert restarted.targets[boundary].sum() > 0                       # what a fresh risk state would have traded
