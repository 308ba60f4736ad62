"""Features are causal (perturbing the future changes no past value) and correct on known values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradepipe.config import FeatureParams
from tradepipe.features import INDICATORS, build_features, build_labels, feature_columns

ALL = FeatureParams(indicators=sorted(INDICATORS), return_horizons=[1, 5, 21], volatility_window=21,
                    label_horizon=5)


def _perturb_after(bars: pd.DataFrame, cut: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    future = bars["timestamp"] > cut
    out = bars.copy()
    out.loc[future, "close"] *= rng.uniform(0.5, 2.0, future.sum())
    return out


@pytest.mark.parametrize("cut_index", [300, 600, 900])
def test_every_feature_is_causal(bars: pd.DataFrame, cut_index: int) -> None:
    cut = bars["timestamp"].drop_duplicates().sort_values().iloc[cut_index]
    before = build_features(bars, ALL)
    after = build_features(_perturb_after(bars, cut), ALL)
    past = before["timestamp"] <= cut
    pd.testing.assert_frame_equal(before[past], after[past])
    # the perturbation is real: the future did change
    assert not before[~past][feature_columns(ALL)].equals(after[~past][feature_columns(ALL)])


def test_label_looks_forward_and_features_never_hold_it(bars: pd.DataFrame) -> None:
    labels = build_labels(bars, 5)
    feats = build_features(bars, ALL)
    assert "fwd_logret_5" not in feats.columns
    aapl = bars[bars["symbol"] == "AAPL"].reset_index(drop=True)
    got = labels[labels["symbol"] == "AAPL"]["fwd_logret_5"].to_numpy()
    expected = np.log(aapl["close"].shift(-5) / aapl["close"]).to_numpy()
    np.testing.assert_allclose(got, expected, equal_nan=True)
    assert np.isnan(got[-5:]).all() and np.isfinite(got[:-5]).all()


def test_returns_and_volatility_values(bars: pd.DataFrame) -> None:
    feats = build_features(bars, ALL)
    ko = bars[bars["symbol"] == "KO"]["close"].to_numpy()
    got = feats[feats["symbol"] == "KO"]
    np.testing.assert_allclose(got["logret_5"].to_numpy()[5:], np.log(ko[5:] / ko[:-5]), rtol=1e-9, atol=1e-14)
    r = np.diff(np.log(ko))
    np.testing.assert_allclose(got["rvol_21"].to_numpy()[21], np.std(r[:21], ddof=1) * np.sqrt(252), rtol=1e-10)
    rsi = got["rsi_14"].dropna()
    assert rsi.between(-0.5, 0.5).all() and rsi.std() > 0.05


def test_unknown_indicator_is_refused() -> None:
    with pytest.raises(ValueError, match="nope"):
        feature_columns(FeatureParams(indicators=["rsi_14", "nope"]))
