"""Bars posted to the serving app's account endpoint, as plain columns (no frame on the hot path).

A request carries a few bars (one per symbol of a new timestamp); the trader indexes them into its arrays at once
and makes the canonical long table of them only when one is asked for (``PostedBars.frame``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from tradepipe.core.schema import OPTIONAL
from tradepipe.core.types import Array
from tradepipe.trading.store import utc

__all__ = ["PostedBars"]


@dataclass(frozen=True)
class PostedBars:
    """Bars as columns: a UTC timestamp and a symbol per bar, and ``values`` (close, then the optional price columns
    some bar has, NaN where a bar has none), each (n,)."""

    timestamps: list[pd.Timestamp]
    symbols: list[str]
    values: dict[str, Array]

    @classmethod
    def of(cls, timestamps: Sequence[datetime], symbols: Sequence[str], close: Sequence[float],
           optional: dict[str, Sequence[float | None]]) -> PostedBars:
        """Bars from parsed fields (naive timestamps are UTC, as ``pd.to_datetime(..., utc=True)`` reads them);
        an optional column is kept when some bar has it."""
        stamps: dict[datetime, pd.Timestamp] = {}  # a request's bars mostly share one timestamp
        converted = [stamps[t] if t in stamps else stamps.setdefault(t, utc(t)) for t in timestamps]
        values = {"close": np.asarray(close, dtype=np.float64)}
        for column in OPTIONAL:
            column_values = optional.get(column)
            if column_values is not None and any(v is not None for v in column_values):
                values[column] = np.array([np.nan if v is None else v for v in column_values], dtype=np.float64)
        return cls(converted, list(symbols), values)

    def __len__(self) -> int:
        return len(self.symbols)

    def take(self, keep: Array) -> PostedBars:
        """The bars where the boolean ``keep`` (n,) is True."""
        index = np.flatnonzero(keep)
        return PostedBars([self.timestamps[i] for i in index], [self.symbols[i] for i in index],
                          {c: v[index] for c, v in self.values.items()})

    @classmethod
    def concat(cls, parts: Sequence[PostedBars]) -> PostedBars:
        """The bars of ``parts`` in order (a column some part lacks is NaN there)."""
        columns = {c: None for part in parts for c in part.values}
        return cls([t for part in parts for t in part.timestamps], [s for part in parts for s in part.symbols],
                   {c: np.concatenate([part.values.get(c, np.full(len(part), np.nan)) for part in parts])
                    for c in columns})

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled with each distinct timestamp once, as nanoseconds (a step worker's pipe carries them): a
        ``pd.Timestamp`` pickles and loads slowly, and a posting's bars mostly share one."""
        stamps: dict[pd.Timestamp, int] = {}
        codes = [stamps.setdefault(t, len(stamps)) for t in self.timestamps]
        return (_unpickled, (np.array([t.value for t in stamps], dtype=np.int64), np.array(codes, dtype=np.int64),
                             self.symbols, self.values))

    def frame(self) -> pd.DataFrame:
        """The canonical long table of the bars (timestamp, symbol, close, then the optional columns)."""
        return pd.DataFrame({"timestamp": pd.DatetimeIndex(self.timestamps), "symbol": self.symbols, **self.values})


def _unpickled(stamps: Array, codes: Array, symbols: list[str], values: dict[str, Array]) -> PostedBars:
    distinct = [pd.Timestamp(int(ns), tz="UTC") for ns in stamps]
    return PostedBars([distinct[c] for c in codes.tolist()], symbols, values)
