"""Validate bars as a file holds them (``tradepipe data validate``): the data, not the file's row order.

Ingest sorts bars into the canonical order (timestamp, then symbol) before anything validates them, so the
order of rows in a file is a storage detail: a file sorted by date with symbols in any order within a date is
as good as one sorted by symbol. The bars are sorted the same way here before the suite runs; the one order
problem reported is a symbol whose timestamps go back in time from one of its rows to the next, which sorting
would hide but which usually means two exports pasted together. Example rows are the file's data rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tradepipe.config import ValidateParams
from tradepipe.core.schema import KEY
from tradepipe.validation.gate import validate_bars
from tradepipe.validation.report import MAX_EXAMPLES, Failure, ValidationReport

BACKWARDS = "expect_timestamps_to_increase_within_symbol"
_BACKWARDS_HINT = ("this bar is older than the symbol's previous bar in the file: the file's bars of this symbol "
                   "go back in time (often two exports pasted together); sort each symbol's bars oldest first, "
                   "or check that nothing is missing or repeated around these rows")


def validate_file_bars(bars: pd.DataFrame, params: ValidateParams, name: str = "bars") -> ValidationReport:
    """Validate bars in a file's row order: the suite on the canonically sorted bars, plus every place where a
    symbol's timestamps go backwards from one of its rows to the next; example ``row`` numbers are 1-based rows
    of the file as given."""
    backwards = backwards_failures(bars)
    frame = bars.reset_index(drop=True)
    order = (frame.sort_values(KEY, kind="stable").index.to_numpy() if set(KEY) <= set(frame.columns)
             else np.arange(len(frame)))
    report = validate_bars(frame.iloc[order].reset_index(drop=True), params, name)
    failures = [*backwards, *(_in_file_rows(f, order) for f in report.failures)]
    return ValidationReport(success=report.success and not backwards, n_rows=report.n_rows, failures=failures,
                            evaluated=report.evaluated + 1, name=name)


def backwards_failures(bars: pd.DataFrame) -> list[Failure]:
    """One Failure per symbol whose timestamps go back in time between consecutive rows of that symbol."""
    if not {"timestamp", "symbol"} <= set(bars.columns):
        return []
    frame = bars[["timestamp", "symbol"]].reset_index(drop=True)
    previous = frame.groupby("symbol", sort=False)["timestamp"].shift()
    back = (frame["timestamp"] < previous).fillna(False).to_numpy(dtype=bool)
    failures = []
    for symbol, rows in frame.index[back].to_series().groupby(frame["symbol"][back], sort=False):
        examples = [{"row": int(pos) + 1, "timestamp": frame["timestamp"].iat[pos].isoformat(),
                     "previous_timestamp": previous.iat[pos].isoformat()} for pos in rows.iloc[:MAX_EXAMPLES]]
        failures.append(Failure(BACKWARDS, "timestamp", str(symbol), examples, _BACKWARDS_HINT, len(rows)))
    return failures


def _in_file_rows(failure: Failure, order: np.ndarray) -> Failure:
    """The failure with its example rows numbered as in the file (``order[i]`` is sorted row i's file row)."""
    examples = [{**ex, "row": int(order[ex["row"] - 1]) + 1} if "row" in ex else ex for ex in failure.examples]
    return dataclasses.replace(failure, examples=examples)
