"""Read a bars file (.csv or .parquet) into canonical bars, refusing what cannot be read cleanly.

Timestamp policy: values with a UTC offset (``Z``, ``+02:00``, offsets that differ across DST) are
converted to UTC; a file whose timestamps all lack an offset is read as UTC (daily bars are usually
written as plain dates); a file that mixes values with and without an offset is refused, because the
naive ones are ambiguous.

Missing values (empty, ``NaN``, ``NA``, ``null``) are kept as missing so that the validation suite
reports them with their rows; text that is not a number or a timestamp is refused here. Columns
outside the canonical schema are dropped; rows keep their order (sorting is checked, not fixed).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tradepipe.core.schema import COLUMNS, OPTIONAL, REQUIRED

_NA_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none"})
_NUMERIC = ("open", "high", "low", "close", "volume")
_OFFSET = r"(?:[zZ]|[+-]\d{2}:?\d{2})$"


class BarsFileError(ValueError):
    """A bars file is unreadable, empty, not UTF-8, lacks a column or holds a value of the wrong type."""


class _Rows:
    """Names a data row (0-based position) the way a person finds it in the file."""

    def __init__(self, path: Path, lines: list[int] | None) -> None:
        self.path = path
        self.lines = lines

    def row(self, pos: int) -> str:
        row = f"row {pos + 1}"
        return row if self.lines is None else f"line {self.lines[pos]} ({row})"

    def where(self, column: str, pos: int) -> str:
        return f"{self.path}: column {column!r}, {self.row(pos)}"


def read_bars_file(path: str | Path, flag_column: str | None = None) -> pd.DataFrame:
    """Read a .csv or .parquet bars file into canonical bars; raise BarsFileError naming what is wrong.

    ``flag_column``, when the file has it, is kept as booleans (true/false, 1/0, yes/no; empty: false),
    e.g. ``validate.return_flag_column``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise BarsFileError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BarsFileError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    if not data.strip():
        raise BarsFileError(f"{path}: the file is empty; expected a header and at least one bar")
    raw, rows = _read_csv(path, data) if suffix == ".csv" else _read_parquet(path, data)
    duplicated = sorted(set(raw.columns[raw.columns.duplicated()]))
    if duplicated:
        raise BarsFileError(f"{path}: column(s) {', '.join(duplicated)} appear more than once in the header")
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise BarsFileError(
            f"{path}: missing required column(s) {', '.join(map(repr, missing))}; found "
            f"{', '.join(map(str, raw.columns))}. Canonical bars need {', '.join(REQUIRED)} "
            f"(optional: {', '.join(OPTIONAL)})"
        )
    if raw.empty:
        raise BarsFileError(f"{path}: the file has a header but no rows")
    out = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    for column in (c for c in COLUMNS if c in raw.columns):
        series = raw[column].reset_index(drop=True)
        if column == "timestamp":
            out[column] = _timestamps(series, rows)
        elif column == "symbol":
            out[column] = _symbols(series)
        else:
            out[column] = _numbers(series, column, rows)
    if flag_column and flag_column in raw.columns:
        out[flag_column] = _flags(raw[flag_column].reset_index(drop=True), flag_column, rows)
    return out


_TRUE, _FALSE = frozenset({"true", "1", "yes", "y", "t"}), frozenset({"false", "0", "no", "n", "f"})


def _flags(series: pd.Series, column: str, rows: _Rows) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.fillna(False).astype(bool)
    missing = _missing(series)
    text = series.astype(str).str.strip().str.lower()
    bad = ~(missing | text.isin(_TRUE | _FALSE))
    if bad.any():
        raise BarsFileError(_first_bad(bad, series, column, rows, "a boolean (true/false)"))
    return text.isin(_TRUE) & ~missing


def _read_csv(path: Path, data: bytes) -> tuple[pd.DataFrame, _Rows]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BarsFileError(_not_utf8(path, data, exc.start)) from exc
    if not text.strip():
        raise BarsFileError(f"{path}: the file is empty; expected a header and at least one bar")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
        records: list[list[str]] = []
        lines: list[int] = []
        for record in reader:
            if not record or record == [""]:
                continue
            if len(record) != len(header):
                raise BarsFileError(
                    f"{path}: line {reader.line_num} (row {len(records) + 1}) has {len(record)} "
                    f"field(s) but the header has {len(header)} ({', '.join(header)}); the file looks "
                    "truncated or malformed: re-export it"
                )
            records.append(record)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise BarsFileError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from exc
    frame = pd.DataFrame(records, columns=header, dtype=object)
    return frame, _Rows(path, lines)


def _not_utf8(path: Path, data: bytes, pos: int) -> str:
    line_start = data.rfind(b"\n", 0, pos) + 1
    line = data.count(b"\n", 0, pos) + 1
    header = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().split(",")
    field = data.count(b",", line_start, pos)
    column = header[field].strip() if field < len(header) else f"field {field + 1}"
    return (
        f"{path}: not UTF-8 text: byte 0x{data[pos]:02x} at line {line} (row {line - 1}), "
        f"column {column!r}; re-save the file as UTF-8"
    )


def _read_parquet(path: Path, data: bytes) -> tuple[pd.DataFrame, _Rows]:
    try:  # decoding the pages can fail too (a corrupt body behind a valid footer)
        frame = pq.ParquetFile(pa.BufferReader(data)).read().to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise BarsFileError(
            f"{path}: not a readable parquet file ({reason}); it may be truncated or corrupt: re-export it"
        ) from exc
    return frame, _Rows(path, None)


def _missing(series: pd.Series) -> pd.Series:
    return series.isna() | series.astype(str).str.strip().str.lower().isin(_NA_TOKENS)


def _first_bad(bad: pd.Series, series: pd.Series, column: str, rows: _Rows, expected: str) -> str:
    pos = int(bad.to_numpy().argmax())
    return f"{rows.where(column, pos)}: {series.iloc[pos]!r} is not {expected} ({int(bad.sum())} such row(s))"


def _numbers(series: pd.Series, column: str, rows: _Rows) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        raise BarsFileError(f"{rows.path}: column {column!r} holds booleans; expected numbers")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype("float64")
    missing = _missing(series)
    values = pd.to_numeric(series.where(~missing).astype(str).str.strip().where(~missing), errors="coerce")
    bad = values.isna() & ~missing
    if bad.any():
        raise BarsFileError(_first_bad(bad, series, column, rows, "a number"))
    return values.astype("float64")


def _symbols(series: pd.Series) -> pd.Series:
    text = series.astype(str).str.strip()
    return text.where(series.notna() & (text != "")).astype("str")  # "NA" may be a ticker, not a gap


def _timestamps(series: pd.Series, rows: _Rows) -> pd.Series:
    return _parse_timestamps(series, rows, "timestamp", "UTC")


def parse_timestamps(series: pd.Series, path: Path, column: str = "timestamp", timezone: str = "UTC",
                     lines: list[int] | None = None) -> pd.Series:
    """Parse a column of timestamps to UTC; raise BarsFileError naming file, column and first bad row.

    Values with an offset are converted to UTC (offsets may differ, e.g. across DST); values without one
    are wall times in ``timezone``. A column mixing both is refused. Missing values stay missing (NaT).
    ``lines`` maps data rows to file lines for the message, when known.
    """
    return _parse_timestamps(series.reset_index(drop=True), _Rows(path, lines), column, timezone)


def _parse_timestamps(series: pd.Series, rows: _Rows, column: str, timezone: str) -> pd.Series:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.as_unit("us")
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return _localize(series, rows, column, timezone)
    if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
        raise BarsFileError(
            f"{rows.path}: column {column!r} has dtype {series.dtype}; expected datetimes or ISO 8601 text"
        )
    missing = _missing(series)
    text = series.where(~missing).astype(str).str.strip()
    aware = text.str.contains(_OFFSET, regex=True) & ~missing
    naive = ~aware & ~missing
    if aware.any() and naive.any():
        a, n = int(aware.to_numpy().argmax()), int(naive.to_numpy().argmax())
        raise BarsFileError(
            f"{rows.where(column, n)}: {text.iloc[n]!r} has no UTC offset but "
            f"{rows.row(a)} {text.iloc[a]!r} has one; mixed timezones are ambiguous: write every "
            f"timestamp with an offset (e.g. 2020-01-02T00:00:00Z) or none (read as {timezone})"
        )
    parsed = pd.to_datetime(text.where(~missing), utc=bool(aware.any()), format="ISO8601", errors="coerce")
    bad = parsed.isna() & ~missing
    if bad.any():
        raise BarsFileError(_first_bad(bad, series, column, rows, "an ISO 8601 timestamp"))
    if aware.any():
        return parsed.dt.as_unit("us")
    return _localize(parsed, rows, column, timezone)


def _localize(naive: pd.Series, rows: _Rows, column: str, timezone: str) -> pd.Series:
    try:
        local = naive.dt.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
    except (ValueError, KeyError) as exc:  # unknown zone, or a wall time that DST skips or repeats
        raise BarsFileError(f"{rows.path}: column {column!r} cannot be read in timezone {timezone!r}: {exc}; "
                            "write the timestamps with their UTC offset") from exc
    return local.dt.tz_convert("UTC").dt.as_unit("us")
