"""Walk-forward windows and stitching: each slice is traded by a fit that saw only its own past."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradepipe.backtest.walk_forward import Window, live_window, walk_forward_targets, walk_forward_windows
from tradepipe.config import BacktestWindowParams
from tradepipe.core.market import Market

DAYS = pd.bdate_range("2010-01-01", "2016-12-31", tz="UTC")


def _market(seed: int = 0) -> Market:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, 0.01, (len(DAYS), 3))
    features = rng.normal(size=(len(DAYS), 3, 2)).astype(np.float32)
    return Market(DAYS, ["A", "B", "C"], returns, features, np.zeros((len(DAYS), 3), np.float32))


class MeanPolicy:
    """Long the assets whose training-window mean return is positive, scaled by the last bar's feature."""

    def __init__(self, train: Market) -> None:
        self.long = (train.returns.mean(axis=0) > 0).astype(float)

    def targets(self, market: Market) -> np.ndarray:
        return self.long * (1.0 + np.tanh(market.features[:, :, 0])) / 6.0


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


def _run(market: Market, seen: list[tuple[pd.Timestamp, pd.Timestamp]]) -> np.ndarray:
    cfg = BacktestWindowParams(train_years=1, test_years=1, warmup_bars=10)
    windows = walk_forward_windows(market.timestamps, pd.Timestamp("2012-01-01", tz="UTC"), cfg, purge=3,
                                   history_start=market.timestamps[0])

    def fit(train: Market, window: Window) -> MeanPolicy:
        seen.append((train.timestamps[-1], market.timestamps[window.test.start]))
        return MeanPolicy(train)

    return walk_forward_targets(market, windows, fit, cfg.warmup_bars)


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
