"""The canonical bar schema: long format, one row per (timestamp, symbol)."""

from __future__ import annotations

import pandas as pd

REQUIRED = ("timestamp", "symbol", "close")
OPTIONAL = ("open", "high", "low", "volume")
COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")


def to_canonical(wide_close: pd.DataFrame) -> pd.DataFrame:
    """Turn a wide frame of closes (index = dates, columns = symbols) into canonical long bars."""
    long = wide_close.rename_axis(index="timestamp", columns="symbol").stack().rename("close").reset_index()
    long["timestamp"] = pd.to_datetime(long["timestamp"], utc=True)
    long["symbol"] = long["symbol"].astype(str)
    long["close"] = long["close"].astype("float64")
    return long.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)


def to_wide(bars: pd.DataFrame, column: str = "close") -> pd.DataFrame:
    """Pivot canonical bars to a wide frame (index = timestamp, columns = symbols, sorted)."""
    wide = bars.pivot(index="timestamp", columns="symbol", values=column).sort_index()
    return wide[sorted(wide.columns)]
