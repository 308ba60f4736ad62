"""Turn a GX validation result into a short report: what failed, for which symbol, where, what to do."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from great_expectations.core import ExpectationSuiteValidationResult
from great_expectations.core.expectation_validation_result import ExpectationValidationResult

from tradepipe.validation.derived import Batch

MAX_EXAMPLES = 3  # offending rows kept per failure
MAX_SYMBOLS = 10  # symbols shown per failed check in the summary
# Helper columns are shown next to the input column they are computed from.
_CONTEXT = {"abs_return": ("close",), "stale_run": ("close",), "gap_sessions": ("gap_from",)}


@dataclass(frozen=True)
class Failure:
    """One failed expectation for one symbol (None: no symbol); examples are its first offending rows."""

    expectation: str
    column: str | None
    symbol: str | None
    examples: list[dict[str, Any]]
    hint: str
    unexpected_count: int = 0


@dataclass(frozen=True)
class ValidationReport:
    """The verdict of the GX suite on a set of bars. Example ``row`` numbers are 1-based data rows."""

    success: bool
    n_rows: int
    failures: list[Failure]
    evaluated: int
    name: str = "bars"

    def summary(self) -> str:
        """Short human-readable text: each failed expectation, symbol, first offending rows, what to do."""
        if self.success:
            return f"{self.name}: passed all {self.evaluated} checks on {self.n_rows} rows"
        checks: dict[tuple[str, str | None], list[Failure]] = {}
        for f in self.failures:
            checks.setdefault((f.expectation, f.column), []).append(f)
        lines = [f"{self.name}: FAILED {len(checks)} of {self.evaluated} checks on {self.n_rows} rows"]
        for (expectation, column), failures in checks.items():
            where = f" on {column}" if column else ""
            lines.append(f"- {expectation}{where}")
            lines.append(f"    what to do: {failures[0].hint}")
            for f in failures[:MAX_SYMBOLS]:
                who = "" if f.symbol is None else f"symbol {f.symbol}: "
                lines.append(f"    {who}{f.unexpected_count} row(s)" if f.unexpected_count else f"    {who}")
                lines += ["      " + " ".join(f"{k}={_show(v)}" for k, v in ex.items()) for ex in f.examples]
            if len(failures) > MAX_SYMBOLS:
                lines.append(f"    ... and {len(failures) - MAX_SYMBOLS} more symbol(s): see to_dict()")
        return "\n".join(line.rstrip() for line in lines if line.strip())

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form of the report."""
        return asdict(self)


def report_from_result(result: ExpectationSuiteValidationResult, batch: Batch, name: str) -> ValidationReport:
    """Build the report from the GX result; its success is the GX verdict."""
    failures = [f for r in result.results if not r.success for f in _failures(r, batch.frame)]
    return ValidationReport(
        success=bool(result.success), n_rows=len(batch.frame), failures=failures,
        evaluated=len(result.results), name=name,
    )


def _failures(r: ExpectationValidationResult, frame: pd.DataFrame) -> list[Failure]:
    config = r.expectation_config
    assert config is not None
    kwargs = config.kwargs
    columns = kwargs.get("column_list") or [kwargs[k] for k in ("column", "column_A", "column_B")
                                             if k in kwargs]
    hint = config.notes if isinstance(config.notes, str) else ""
    info = r.exception_info or {}
    if info.get("raised_exception"):
        hint = f"GX could not evaluate this check ({info.get('exception_message')}); {hint}"
    observed = r.result.get("observed_value")
    if observed is not None:
        hint = f"{hint} (observed: {observed})"
    column = ",".join(columns) or None
    index = r.result.get("unexpected_index_list")
    if not index:
        return [Failure(config.type, column, None, [], hint)]
    shown = [c for c in (*columns, *_CONTEXT.get(column or "", ())) if c in frame.columns]
    symbols = frame["symbol"] if "symbol" in frame.columns else pd.Series(None, frame.index, dtype=object)
    groups: dict[str | None, list[int]] = {}
    for pos in index:
        symbol = symbols.iat[pos]
        groups.setdefault(None if pd.isna(symbol) else str(symbol), []).append(pos)
    return [
        Failure(config.type, column, symbol,
                [_example(pos, frame.iloc[pos], shown) for pos in rows[:MAX_EXAMPLES]], hint, len(rows))
        for symbol, rows in groups.items()
    ]


def _example(pos: int, row: pd.Series, shown: list[str]) -> dict[str, Any]:
    example: dict[str, Any] = {"row": int(pos) + 1}
    for c in ("timestamp", "symbol", *shown):
        if c in row.index:
            example[c] = _json(row[c])
    return example


def _show(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _json(value: Any) -> Any:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value if isinstance(value, str | int | float | bool) else str(value)
