"""Features are causal (perturbing the future changes no past value) and correct on known values."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from tradepipe.config import FeatureParams, Params, SentimentParams
from tradepipe.data.sources import load_source
from tradepipe.features import INDICATORS, build_features, build_labels, cross_sectional_ranks, feature_columns
from tradepipe.features.build import indicator_names, trailing_std
from tradepipe.features.indicators import Prices
from tradepipe.runtime.params import resolve

CLOSE_ONLY = sorted(n for n, i in INDICATORS.items() if i.close_only)
NEEDS_OHLCV = sorted(n for n, i in INDICATORS.items() if not i.close_only)
RANKS = ["logret_1", "logret_5", "rvol_21", "rsi_14"]
ALL = FeatureParams(indicators=CLOSE_ONLY, return_horizons=[1, 5, 21], volatility_window=21, label_horizon=5,
                    ranks=RANKS)
ALL_OHLCV = ALL.model_copy(update={"ohlcv_indicators": NEEDS_OHLCV, "ohlcv": True,
                                   "ranks": [*RANKS, "natr_14", "mfi_14"]})


@pytest.fixture(scope="module")
def ohlcv_bars() -> pd.DataFrame:
    """Real OHLCV bars: backtesting's GOOG and arch's S&P 500 and NASDAQ indices, 2006-2010."""
    names = ("backtesting_goog", "arch_sp500", "arch_nasdaq")
    parts = [load_source(name, None, "2006-01-01", "2010-12-31") for name in names]
    return pd.concat(parts, ignore_index=True).sort_values(["timestamp", "symbol"], ignore_index=True)


def _perturb_after(bars: pd.DataFrame, cut: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    """Scale every price and volume after ``cut`` by a random factor, independently per column."""
    rng = np.random.default_rng(seed)
    future = bars["timestamp"] > cut
    out = bars.copy()
    for column in ("open", "high", "low", "close", "volume"):
        if column in out:
            out.loc[future, column] *= rng.uniform(0.5, 2.0, future.sum())
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


@pytest.mark.parametrize("cut_index", [250, 700])
def test_every_ohlcv_indicator_and_rank_is_causal(ohlcv_bars: pd.DataFrame, cut_index: int) -> None:
    cut = ohlcv_bars["timestamp"].drop_duplicates().sort_values().iloc[cut_index]
    before = build_features(ohlcv_bars, ALL_OHLCV)
    after = build_features(_perturb_after(ohlcv_bars, cut, seed=cut_index), ALL_OHLCV)
    assert set(feature_columns(ALL_OHLCV)) >= set(INDICATORS)  # the whole catalog is under test
    past = before["timestamp"] <= cut
    pd.testing.assert_frame_equal(before[past], after[past])
    changed = [c for c in feature_columns(ALL_OHLCV) if not before.loc[~past, c].equals(after.loc[~past, c])]
    assert len(changed) == len(feature_columns(ALL_OHLCV))  # every column did see the perturbed future


def test_catalog_size_and_families(params: Params) -> None:
    assert len(INDICATORS) >= 25
    assert {i.family for i in INDICATORS.values()} == {"trend", "momentum", "volatility", "volume"}
    assert {i.family for n, i in INDICATORS.items() if not i.close_only} == {"trend", "momentum", "volatility",
                                                                            "volume"}
    configured = [*params.features.indicators, *params.features.ohlcv_indicators]
    assert sorted(configured) == sorted(INDICATORS)


def test_ohlcv_indicators_are_picked_from_the_source(params: Params, bars: pd.DataFrame) -> None:
    assert params.data.source == "skfolio_sp500" and params.features.ohlcv is False
    names = feature_columns(params.features)
    assert not set(names) & set(NEEDS_OHLCV)
    assert build_features(bars, params.features).shape[1] == len(names) + 2  # close-only bars: no crash
    raw = {**params.model_dump(by_alias=True), "data": {**params.data.model_dump(), "source": "backtesting_goog"}}
    goog = resolve(type(params).model_validate({**raw, "features": {**raw["features"], "ohlcv": None}}))
    assert goog.features.ohlcv is True and set(NEEDS_OHLCV) <= set(feature_columns(goog.features))
    with pytest.raises(ValueError, match="no \\['high', 'low', 'open', 'volume'\\]"):
        build_features(bars, goog.features)


def test_ohlcv_indicator_listed_as_close_only_is_refused() -> None:
    with pytest.raises(ValueError, match="natr_14.*ohlcv_indicators"):
        feature_columns(FeatureParams(indicators=["rsi_14", "natr_14"]))


def test_ohlcv_indicator_values(ohlcv_bars: pd.DataFrame) -> None:
    goog = ohlcv_bars[ohlcv_bars["symbol"] == "GOOG"].reset_index(drop=True)
    got = build_features(goog, ALL_OHLCV)
    h, lo, c, v = (goog[k].to_numpy() for k in ("high", "low", "close", "volume"))
    np.testing.assert_allclose(got["natr_14"], talib.NATR(h, lo, c, 14) / 100, rtol=1e-12, equal_nan=True)
    obv = talib.OBV(c, v)
    np.testing.assert_allclose(got["obv_flow_20"].to_numpy()[30], (obv[30] - obv[10]) / v[11:31].sum(), rtol=1e-12)
    willr = got["willr_14"].dropna()
    assert willr.between(-0.5, 0.5).all() and willr.std() > 0.1
    assert INDICATORS["bop"].fn(Prices(close=c, high=h, low=lo, open=goog["open"].to_numpy())).shape == c.shape


def test_cross_sectional_rank_values() -> None:
    t1, t2 = pd.Timestamp("2020-01-02", tz="UTC"), pd.Timestamp("2020-01-03", tz="UTC")
    feats = pd.DataFrame({"timestamp": [t1, t1, t1, t2, t2, t2], "symbol": list("ABCABC"),
                          "x": [3.0, 1.0, 2.0, 5.0, np.nan, 7.0]})
    got = cross_sectional_ranks(feats, ["x"])["xrank_x"].to_numpy()
    np.testing.assert_array_equal(got, [0.5, -0.5, 0.0, -0.5, np.nan, 0.5])
    alone = pd.DataFrame({"timestamp": [t1], "symbol": ["A"], "x": [4.0]})
    assert cross_sectional_ranks(alone, ["x"])["xrank_x"].tolist() == [0.0]


def test_ranks_use_only_the_same_timestamp(bars: pd.DataFrame, params: Params) -> None:
    feats = build_features(bars, ALL)
    day = feats[feats["timestamp"] == feats["timestamp"].iloc[-1]]
    expected = day["logret_5"].rank().sub(1).div(len(day) - 1).sub(0.5)
    np.testing.assert_allclose(day["xrank_logret_5"], expected)
    assert indicator_names(params.features) == params.features.indicators  # close-only default universe


def test_features_stage_with_missing_headlines_file_is_a_stage_error(tmp_path: Path, params: Params,
                                                                    bars: pd.DataFrame) -> None:
    from pipelines.features import features
    from tradepipe.paths import BARS, FEATURES
    from tradepipe.runtime.stage import StageError

    (tmp_path / BARS).parent.mkdir(parents=True)
    bars.to_parquet(tmp_path / BARS)
    missing = tmp_path / "news" / "headlines.csv"
    fp = params.features.model_copy(update={"sentiment": SentimentParams(path=str(missing))})
    with pytest.raises(StageError, match=rf"features.sentiment.path {re.escape(str(missing))}: headlines cannot "
                                         r"be read \(No such file or directory\)"):
        features(params.model_copy(update={"features": fp}), tmp_path)
    assert not (tmp_path / FEATURES).exists()


def test_features_stage_logs_its_feature_columns(tmp_path: Path, params: Params, bars: pd.DataFrame) -> None:
    import mlflow
    from pipelines.features import features
    from tradepipe.paths import BARS, FEATURES
    from tradepipe.runtime.tracking import stage_run

    (tmp_path / BARS).parent.mkdir(parents=True)
    bars.to_parquet(tmp_path / BARS)
    with stage_run("features", {}, tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}", "features-test") as run:
        metrics = features(params, tmp_path)
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/features/feature_columns.json")
    assert logged == {"features": feature_columns(params.features), "indicators": params.features.indicators,
                      "ohlcv": False}
    assert metrics["features"] == len(logged["features"])
    assert list(pd.read_parquet(tmp_path / FEATURES).columns) == ["timestamp", "symbol", *logged["features"]]


def test_trailing_std_depends_on_its_window_only_bit_for_bit() -> None:
    """Each value is the sample std of its window (to 1e-12, NaN where the window is short or holds a NaN), and the
    last window alone gives the series' last value exactly (the live feature row computes only that window)."""
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 0.02, size=(300, 4))
    x[100, 2] = np.nan
    got = trailing_std(x, 21)
    assert np.isnan(got[:20]).all() and np.isnan(got[100:121, 2]).all() and not np.isnan(got[121:, 2]).any()
    for t in (20, 99, 150, 299):
        np.testing.assert_allclose(got[t, [0, 1, 3]], np.std(x[t - 20:t + 1, [0, 1, 3]], axis=0, ddof=1),
                                   rtol=1e-12)
    np.testing.assert_array_equal(trailing_std(x[-21:], 21)[-1], got[-1])
    np.testing.assert_array_equal(trailing_std(x[:, 1], 21), got[:, 1])  # one symbol: the same bits
    shifted = x.copy()
    shifted[:250] += 1.0  # only what lies before the last 50 windows changes
    np.testing.assert_array_equal(trailing_std(shifted, 21)[-30:], got[-30:])
