"""Per-symbol quantities that GX cannot express directly, added as helper columns that GX then checks.

Every helper is aligned with the input rows (the batch keeps their positions as its index) and is
missing where it is undefined (first bar of a symbol, missing inputs), which GX map expectations skip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradepipe.data.schema import COLUMNS

# Canonical dtype of each column, as GX's expect_column_type_to_be names it for pandas.
DTYPES = {
    "timestamp": "datetime64[us, UTC]",
    "symbol": "str",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "float64",
}

_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Batch:
    """Canonical columns (dtype spellings normalized) plus helper columns, indexed by input row position."""

    frame: pd.DataFrame
    typed: frozenset[str]  # canonical columns that are present with their canonical dtype


def prepare(bars: pd.DataFrame) -> Batch:
    """Normalize dtype spellings (time unit, float width, string flavour) and add the helper columns."""
    frame = pd.DataFrame(
        {c: _normalize(bars[c]) for c in COLUMNS if c in bars.columns}, index=pd.RangeIndex(len(bars))
    )
    typed = frozenset(c for c in frame.columns if str(frame[c].dtype) == DTYPES[c])
    if "symbol" in typed:
        frame["rows_per_symbol"] = frame.groupby("symbol")["symbol"].transform("size").astype("float64")
    if {"symbol", "timestamp"} <= typed:
        step = frame.groupby("symbol", sort=False)["timestamp"].diff()
        frame["timestamp_step_days"] = step / _DAY
        order = frame.sort_values(["symbol", "timestamp"], kind="stable")
        by_symbol = order.groupby("symbol", sort=False)
        frame["gap_days"] = by_symbol["timestamp"].diff() / _DAY
        if "close" in typed:
            close = order["close"]
            prev = by_symbol["close"].shift()
            ret = (close / prev - 1.0).abs()
            frame["abs_return"] = ret.where((close > 0) & (prev > 0))
            same = close.eq(prev).to_numpy()
            run_id = np.cumsum(~same)
            run = pd.Series(same, index=order.index).groupby(run_id).cumsum() + 1
            frame["stale_run"] = run.where(close.notna()).astype("float64")
    return Batch(frame, typed)


def _normalize(series: pd.Series) -> pd.Series:
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return series.dt.as_unit("us")
    if isinstance(dtype, pd.StringDtype):
        return series.astype("str")
    if series.name == "volume" and pd.api.types.is_integer_dtype(dtype):
        return series.astype("float64")
    if pd.api.types.is_float_dtype(dtype):
        return series.astype("float64")
    return series
