"""Bars from CSV/Parquet files: one file or a folder, long or wide, renamed columns, local timezones.

Files already in the canonical long layout (canonical column names, UTC or offset timestamps) are read by
``tradepipe.validation.read_bars_file``, which names file, column and row of any bad value. Other shapes
are reshaped to canonical names first, then parsed here with the same kind of message.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tradepipe.config import FormatParams
from tradepipe.core.schema import COLUMNS, KEY
from tradepipe.data.reader import BarsFileError, parse_timestamps, read_bars_file

SUFFIXES = (".csv", ".parquet", ".pq")


def bar_files(path: Path) -> list[Path]:
    """The bars files at ``path``: the file itself, or every .csv/.parquet under the folder, sorted."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise BarsFileError(f"{path}: folder holds no .csv or .parquet file")
        return files
    if not path.exists():
        raise BarsFileError(f"{path}: no such file or folder")
    return [path]


def read_bars_path(path: str | Path, fmt: FormatParams) -> pd.DataFrame:
    """Read a file or a folder of files into canonical bars; a file without a symbol column is its stem's."""
    frames = [_refuse_missing_symbols(read_one(file, fmt), file) for file in bar_files(Path(path))]
    bars = pd.concat(frames, ignore_index=True)
    return bars.sort_values(KEY, kind="stable").reset_index(drop=True)


def read_one(path: Path, fmt: FormatParams) -> pd.DataFrame:
    """Read one bars file with the given layout, column mapping and timezone."""
    if fmt.layout == "long" and not fmt.columns and fmt.timezone == "UTC" and _has_symbol(path):
        return read_bars_file(path)
    try:
        raw = pd.read_csv(path, dtype=str) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise BarsFileError(f"{path}: cannot be read ({exc})") from exc
    raw = raw.rename(columns=fmt.columns)
    if "timestamp" not in raw:
        raise BarsFileError(f"{path}: no 'timestamp' column (found {', '.join(map(str, raw.columns))}); "
                            "map yours with data.format.columns, e.g. {Date: timestamp}")
    if fmt.layout == "wide":
        raw = raw.melt(id_vars="timestamp", var_name="symbol", value_name="close")
        # an empty cell is no bar (the symbol had not started, or had ended): drop what the melt made of it
        raw = raw[raw["close"].notna() & (raw["close"].astype(str).str.strip() != "")].reset_index(drop=True)
    elif "symbol" not in raw:
        raw = raw.assign(symbol=path.stem)
    if "close" not in raw:
        raise BarsFileError(f"{path}: no 'close' column; map yours with data.format.columns, e.g. {{Close: close}}")
    out = pd.DataFrame({"timestamp": parse_timestamps(raw["timestamp"], path, timezone=fmt.timezone),
                        "symbol": raw["symbol"].astype(str)})
    for column in (c for c in COLUMNS[2:] if c in raw):
        out[column] = _numbers(raw[column], column, path)
    return out


def _refuse_missing_symbols(bars: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Refuse a file with rows that name no symbol: they cannot be assigned to a series."""
    missing = bars["symbol"].isna() | (bars["symbol"].str.strip() == "")
    if missing.any():
        rows = [int(i) + 1 for i in missing.to_numpy().nonzero()[0]]
        shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
        raise BarsFileError(f"{path}: column 'symbol' is empty in {len(rows)} row(s) (row {shown}); "
                            "fill in the symbol or drop these rows")
    return bars


def header(path: Path) -> list[str]:
    """The column names of a bars file (CSV first line or parquet schema); empty if it cannot be read."""
    if path.suffix.lower() == ".csv":
        try:
            with path.open(encoding="utf-8-sig", errors="replace") as f:
                return [name.strip() for name in f.readline().split(",")]
        except OSError:
            return []
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, ValueError):
        return []


def _has_symbol(path: Path) -> bool:
    names = header(path)
    return not names or "symbol" in names  # unreadable: let read_bars_file name the problem


def _first_bad(bad: pd.Series, series: pd.Series, column: str, path: Path, expected: str) -> BarsFileError:
    pos = int(bad.to_numpy().argmax())
    return BarsFileError(f"{path}: column {column!r}, row {pos + 1}: {series.iloc[pos]!r} is not {expected} "
                         f"({int(bad.sum())} such row(s))")


def _numbers(series: pd.Series, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    bad = values.isna() & series.notna() & (series.astype(str).str.strip() != "")
    if bad.any():
        raise _first_bad(bad, series, column, path, "a number")
    return values
