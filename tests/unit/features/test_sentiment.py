"""Loughran-McDonald headline sentiment, joined strictly before each bar's 16:00 New York close."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests import DATA
from tradepipe.config import FeatureParams, Params, SentimentParams
from tradepipe.features import build_features, feature_columns
from tradepipe.features.sentiment import bar_close, read_headlines, score, sentiment_features

HEADLINES = DATA / "headlines.csv"
SENT = SentimentParams(path=str(HEADLINES))


def _bars(symbol: str, days: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": pd.to_datetime(days, utc=True), "symbol": symbol, "close": 100.0})


def test_lexicon_scores() -> None:
    got = score(pd.Series(["record profit and strong growth", "lawsuit and losses", "the company said"]))
    np.testing.assert_allclose(got, [1.0, -1.0, 0.0], atol=1e-5)


def test_bar_close_is_new_york_four_pm_in_utc() -> None:
    closes = bar_close(_bars("AAPL", ["2013-01-02", "2013-07-01"]), SENT)
    assert closes.tolist() == [pd.Timestamp("2013-01-02 21:00", tz="UTC"), pd.Timestamp("2013-07-01 20:00", tz="UTC")]


def test_as_of_join_headline_after_close_goes_to_next_bar() -> None:
    bars = _bars("AAPL", ["2013-01-02", "2013-01-03", "2013-01-04"])
    got = sentiment_features(bars, read_headlines(SENT), SENT)
    # 09:15 and 15:59 (both positive) count for Jan 2; 16:01 (negative) for Jan 3; nothing for Jan 4
    np.testing.assert_allclose(got["sent_polarity"], [1.0, -1.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(got["sent_count"], np.log1p([2, 1, 0]))


def test_weekend_headline_counts_for_monday_and_other_symbols_stay_apart() -> None:
    bars = pd.concat([_bars("KO", ["2013-01-04", "2013-01-07"]), _bars("JPM", ["2013-01-02", "2013-01-03"])])
    got = sentiment_features(bars.reset_index(drop=True), read_headlines(SENT), SENT)
    np.testing.assert_allclose(got["sent_polarity"], [0.0, -0.5, -1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(got["sent_count"], np.log1p([0, 2, 1, 1]))


def test_sentiment_is_causal_and_joined_as_features(bars: pd.DataFrame) -> None:
    fp = FeatureParams(indicators=["rsi_14"], sentiment=SENT, ranks=["sent_polarity"])
    headlines = read_headlines(SENT)
    feats = build_features(bars, fp, headlines)
    assert feature_columns(fp)[-3:] == ["sent_polarity", "sent_count", "xrank_sent_polarity"]
    late = headlines.assign(headline=np.where(headlines["published_at"] > pd.Timestamp("2013-01-03 21:00", tz="UTC"),
                                              "fraud lawsuit losses", headlines["headline"]))
    moved = build_features(bars, fp, late)
    past = feats["timestamp"] <= pd.Timestamp("2013-01-03", tz="UTC")
    pd.testing.assert_frame_equal(feats[past], moved[past])
    assert not feats[~past].equals(moved[~past])
    aapl = feats[(feats["symbol"] == "AAPL") & (feats["timestamp"] == pd.Timestamp("2013-01-02", tz="UTC"))]
    assert aapl["sent_polarity"].item() == pytest.approx(1.0, abs=1e-5)


def test_sentiment_off_by_default(params: Params) -> None:
    assert params.features.sentiment.path is None
    assert not [c for c in feature_columns(params.features) if c.startswith("sent_")]


def test_bad_headline_timestamp_names_file_row(tmp_path: Path) -> None:
    bad = tmp_path / "h.csv"
    bad.write_text("published_at,symbol,headline\n2013-01-02T10:00:00Z,AAPL,ok\nyesterday,AAPL,bad\n")
    with pytest.raises(ValueError, match=r"h\.csv: column 'published_at', row 2: 'yesterday'"):
        read_headlines(SentimentParams(path=str(bad)))


def test_headline_without_offset_is_new_york_time(tmp_path: Path) -> None:
    # 17:30 New York on Jan 2 is 22:30 UTC: after that day's 16:00 close, so it belongs to Jan 3
    path = tmp_path / "naive.csv"
    path.write_text("published_at,symbol,headline\n2013-01-02 17:30,AAPL,Apple faces lawsuit and losses\n"
                    "2013-01-02 15:00,AAPL,Apple reports record profit\n")
    headlines = read_headlines(SentimentParams(path=str(path)))
    assert headlines["published_at"].tolist() == [pd.Timestamp("2013-01-02 22:30", tz="UTC"),
                                                  pd.Timestamp("2013-01-02 20:00", tz="UTC")]
    got = sentiment_features(_bars("AAPL", ["2013-01-02", "2013-01-03"]), headlines, SENT)
    np.testing.assert_allclose(got["sent_polarity"], [1.0, -1.0], atol=1e-5)
    np.testing.assert_allclose(got["sent_count"], np.log1p([1, 1]))


def test_hourly_bars_close_at_their_own_timestamp() -> None:
    hours = pd.date_range("2017-06-01 00:00", periods=24, freq="h", tz="UTC")
    bars = pd.DataFrame({"timestamp": hours, "symbol": "EURUSD", "close": 1.1})
    assert bar_close(bars, SENT).tolist() == hours.tolist()
    news = pd.DataFrame({"published_at": [pd.Timestamp("2017-06-01 15:00", tz="UTC")], "symbol": ["EURUSD"],
                         "headline": ["euro zone reports record profit and strong growth"]})
    got = sentiment_features(bars, news, SENT)
    # the 15:00Z headline is news for the 16:00Z bar, not for any earlier bar of the day
    assert got.index[got["sent_count"] > 0].tolist() == [16]
    assert got.loc[16, "sent_polarity"] == pytest.approx(1.0, abs=1e-5)
