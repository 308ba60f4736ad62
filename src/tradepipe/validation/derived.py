"""Per-symbol quantities that GX cannot express directly, added as helper columns that GX then checks.

Every helper is aligned with the input rows (the batch keeps their positions as its index) and is
missing where it is undefined (first bar of a symbol, missing inputs), which GX map expectations skip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.core.groupby import DataFrameGroupBy

from tradepipe.core.schema import COLUMNS

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


def prepare(bars: pd.DataFrame, flag_column: str | None = None) -> Batch:
    """Normalize dtype spellings (time unit, float width, string flavour) and add the helper columns.

    ``flag_column``: a boolean column of ``bars`` (when present) whose true rows are known large moves,
    exempt from the one-bar return bound; it is kept in the batch so that GX checks its type.
    """
    frame = pd.DataFrame(
        {c: _normalize(bars[c]) for c in COLUMNS if c in bars.columns}, index=pd.RangeIndex(len(bars))
    )
    typed = frozenset(c for c in frame.columns if str(frame[c].dtype) == DTYPES[c])
    flagged = None
    if flag_column and flag_column in bars.columns:
        flags = bars[flag_column].reset_index(drop=True)
        frame[flag_column] = flags
        if pd.api.types.is_bool_dtype(flags.dtype):
            flagged = flags.fillna(False).astype(bool)
    if "symbol" in typed:
        frame["rows_per_symbol"] = frame.groupby("symbol")["symbol"].transform("size").astype("float64")
    if {"symbol", "timestamp"} <= typed:
        frame["out_of_order"] = _out_of_order(frame["timestamp"], frame["symbol"])
        step = frame.groupby("symbol", sort=False)["timestamp"].diff()
        frame["timestamp_step_days"] = step / _DAY
        order = frame.sort_values(["symbol", "timestamp"], kind="stable")
        by_symbol = order.groupby("symbol", sort=False)
        frame["gap_sessions"], frame["gap_from"] = _gap_sessions(order, by_symbol)
        if "close" in typed:
            close = order["close"]
            prev = by_symbol["close"].shift()
            ret = (close / prev - 1.0).abs().where((close > 0) & (prev > 0))
            frame["abs_return"] = ret if flagged is None else ret.where(~flagged)
            same = close.eq(prev).to_numpy()
            run_id = np.cumsum(~same)
            run = pd.Series(same, index=order.index).groupby(run_id).cumsum() + 1
            frame["stale_run"] = run.where(close.notna()).astype("float64")
    return Batch(frame, typed)


def _out_of_order(timestamp: pd.Series, symbol: pd.Series) -> pd.Series:
    """1 where a row's (timestamp, symbol) sorts before the previous row's (the canonical order), else 0."""
    prev_ts, prev_sym = timestamp.shift(), symbol.shift()
    before = (timestamp < prev_ts) | ((timestamp == prev_ts) & (symbol < prev_sym))
    known = timestamp.notna() & prev_ts.notna() & symbol.notna() & prev_sym.notna()
    return before.astype("float64").where(known)


def _gap_sessions(order: pd.DataFrame, by_symbol: DataFrameGroupBy) -> tuple[pd.Series, pd.Series]:
    """Sessions of the universe's bar grid (every timestamp any symbol has) missing before each bar of a
    symbol since its previous bar, and that previous bar's timestamp."""
    stamps = order["timestamp"]
    grid = np.unique(stamps.dropna().to_numpy())
    session = pd.Series(np.searchsorted(grid, stamps.to_numpy()), index=order.index, dtype="float64")
    session = session.where(stamps.notna())
    missing = (session.groupby(order["symbol"], sort=False).diff() - 1).clip(lower=0)
    return missing, by_symbol["timestamp"].shift()


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
