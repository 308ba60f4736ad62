"""The canonical bar schema: long format, one row per (timestamp, symbol)."""

from __future__ import annotations

import pandas as pd

REQUIRED = ("timestamp", "symbol", "close")
OPTIONAL = ("open", "high", "low", "volume")
COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
KEY = ["timestamp", "symbol"]


def _finish(long: pd.DataFrame) -> pd.DataFrame:
    long["timestamp"] = pd.to_datetime(long["timestamp"], utc=True).dt.as_unit("us")
    long["symbol"] = long["symbol"].astype(str)
    for column in (c for c in COLUMNS[2:] if c in long):
        long[column] = long[column].astype("float64")
    columns = [c for c in COLUMNS if c in long]
    return long[columns].sort_values(KEY, kind="stable").reset_index(drop=True)


def to_canonical(wide_close: pd.DataFrame) -> pd.DataFrame:
    """Turn a wide frame of closes (index = dates, columns = symbols) into canonical long bars."""
    long = wide_close.rename_axis(index="timestamp", columns="symbol").stack().rename("close").reset_index()
    return _finish(long)


def ohlcv_to_canonical(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """One symbol's OHLCV frame (index = timestamps, columns Open/High/Low/Close/Volume) as canonical bars."""
    named = frame.rename(columns=str.lower)[[c for c in COLUMNS[2:] if c.capitalize() in frame]]
    long = named.rename_axis("timestamp").reset_index().assign(symbol=symbol)
    return _finish(long)


def to_wide(bars: pd.DataFrame, column: str = "close") -> pd.DataFrame:
    """Pivot canonical bars to a wide frame (index = timestamp, columns = symbols, sorted)."""
    wide = bars.pivot(index="timestamp", columns="symbol", values=column).sort_index()
    return wide[sorted(wide.columns)]
