"""Append-only bar archive: a re-ingest adds new (timestamp, symbol) bars and never rewrites stored ones.

A stored bar whose value the source now reports differently (a revised or re-adjusted history) is kept as
stored and listed in ``Merge.changes`` so that a person decides; nothing is overwritten silently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tradepipe.core.schema import COLUMNS, KEY

MAX_LISTED = 50  # changes listed one by one in the manifest; the count covers all


@dataclass(frozen=True)
class Merge:
    """The archive after a merge, how many bars were appended, and the stored values the source changed."""

    bars: pd.DataFrame
    appended: int
    changes: pd.DataFrame  # timestamp, symbol, column, stored, incoming


def _check_unique(bars: pd.DataFrame, what: str) -> None:
    dup = bars.duplicated(KEY, keep=False)
    if dup.any():
        row = bars[dup].iloc[0]
        raise ValueError(f"{what}: {int(dup.sum())} rows share a (timestamp, symbol), e.g. "
                         f"{row['symbol']} at {row['timestamp']}; each bar must appear once")


def merge_bars(stored: pd.DataFrame | None, incoming: pd.DataFrame) -> Merge:
    """Append the bars of ``incoming`` that ``stored`` lacks; report stored values ``incoming`` contradicts."""
    _check_unique(incoming, "incoming bars")
    if stored is None or stored.empty:
        bars = incoming.sort_values(KEY, kind="stable").reset_index(drop=True)
        return Merge(bars, len(bars), _no_changes())
    keys = pd.MultiIndex.from_frame(incoming[KEY])
    known = keys.isin(pd.MultiIndex.from_frame(stored[KEY]))
    new = incoming[~known]
    both = stored.merge(incoming[known], on=KEY, suffixes=("", "__in"))
    changes = []
    for column in (c for c in COLUMNS[2:] if c in stored and c in incoming):
        old, fresh = both[column].to_numpy(), both[f"{column}__in"].to_numpy()
        differs = ~(np.isclose(old, fresh, rtol=1e-12, atol=0.0) | (np.isnan(old) & np.isnan(fresh)))
        if differs.any():
            changes.append(pd.DataFrame({"timestamp": both["timestamp"][differs], "symbol": both["symbol"][differs],
                                         "column": column, "stored": old[differs], "incoming": fresh[differs]}))
    merged = pd.concat([stored, new], ignore_index=True) if len(new) else stored
    merged = merged[[c for c in COLUMNS if c in merged]].sort_values(KEY, kind="stable").reset_index(drop=True)
    report = pd.concat(changes, ignore_index=True).sort_values(KEY) if changes else _no_changes()
    return Merge(merged, len(new), report.reset_index(drop=True))


def _no_changes() -> pd.DataFrame:
    return pd.DataFrame({"timestamp": pd.Series(dtype="datetime64[us, UTC]"), "symbol": pd.Series(dtype=str),
                         "column": pd.Series(dtype=str), "stored": pd.Series(dtype=float),
                         "incoming": pd.Series(dtype=float)})


def content_hash(bars: pd.DataFrame) -> str:
    """SHA-256 of the bars' values (not of the file's bytes, which depend on the parquet writer)."""
    rows = pd.util.hash_pandas_object(bars.reset_index(drop=True), index=False).to_numpy()
    names = ",".join(bars.columns).encode()
    return hashlib.sha256(names + rows.tobytes()).hexdigest()


def describe(bars: pd.DataFrame) -> dict[str, Any]:
    """Symbols with their first and last timestamp and row count, total rows, columns and content hash."""
    per_symbol = bars.groupby("symbol")["timestamp"].agg(["min", "max", "count"])
    return {
        "rows": len(bars),
        "columns": list(bars.columns),
        "content_sha256": content_hash(bars),
        "symbols": {str(s): {"start": r["min"].isoformat(), "end": r["max"].isoformat(), "rows": int(r["count"])}
                    for s, r in per_symbol.iterrows()},
    }


def changes_record(changes: pd.DataFrame) -> dict[str, Any]:
    """The changed-history report for the manifest: a count and the first few changes."""
    listed = changes.head(MAX_LISTED).assign(timestamp=lambda d: d["timestamp"].map(pd.Timestamp.isoformat))
    return {"count": len(changes), "first": listed.to_dict(orient="records")}
