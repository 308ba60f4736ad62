"""Chronological splits purge the label horizon; the scaler sees the training window only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradepipe.config import FeatureParams
from tradepipe.core.scaler import Scaler
from tradepipe.features import build_features, build_labels, feature_columns
from tradepipe.models.panel import Windows, chronological_split, make_panel, prepare

FP = FeatureParams(indicators=["rsi_14", "sma_ratio_50"], return_horizons=[1, 5], label_horizon=5)


@pytest.fixture(scope="module")
def panel(bars: pd.DataFrame):
    return make_panel(build_features(bars, FP), feature_columns(FP), build_labels(bars, FP.label_horizon))


def test_split_purges_label_horizon(panel) -> None:
    split = chronological_split(panel.timestamps, "2011-12-31", "2012-12-31", horizon=5)
    last_train_bar = panel.timestamps.searchsorted(pd.Timestamp("2011-12-31", tz="UTC"), side="right") - 1
    # the last training sample's label window (t, t+5] ends on the last training bar
    assert split.train[1] - 1 + 5 == last_train_bar
    assert panel.timestamps[split.val[0]] > pd.Timestamp("2011-12-31", tz="UTC")
    assert panel.timestamps[split.test[0]] > pd.Timestamp("2012-12-31", tz="UTC")
    assert split.val[1] - 1 + 5 < split.test[0]


def test_scaler_ignores_everything_after_training(panel) -> None:
    stop = 400
    changed = panel.features.copy()
    changed[:, stop:] *= 1000.0
    a, b = Scaler.fit(panel.features, stop), Scaler.fit(changed, stop)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    train = panel.features[:, :stop].reshape(-1, panel.features.shape[-1])
    np.testing.assert_allclose(a.mean, np.nanmean(train, axis=0), rtol=1e-6)


def test_windows_hold_exact_past_slices(panel) -> None:
    prep = prepare(panel, "2011-12-31", "2012-12-31", 5)
    w = Windows(prep.scaled, panel.labels, 10, prep.split.val)
    x, y = w.batch(np.array([0, len(w) - 1]))
    for k, (s, t) in enumerate([(w.sym[0], w.t[0]), (w.sym[-1], w.t[-1])]):
        np.testing.assert_array_equal(x[k], prep.scaled[s, t - 9:t + 1].T)
        assert y[k] == panel.labels[s, t]
    assert prep.split.val[0] <= w.t.min() and w.t.max() < prep.split.val[1]
    assert np.all(np.diff(w.t) >= 0)          # chronological order


def test_split_too_short_is_a_clear_error(panel) -> None:
    with pytest.raises(ValueError, match="window holds"):
        chronological_split(panel.timestamps, "2010-01-05", "2012-12-31", horizon=5)
