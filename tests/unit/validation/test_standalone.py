"""`tradepipe data validate`: the data in any row order, file rows in the report, limits from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from tradepipe.cli import app
from tradepipe.config import ValidateParams
from tradepipe.data.sources import load_source
from tradepipe.validation.standalone import BACKWARDS, validate_file_bars

runner = CliRunner()


def _three_symbols_by_date() -> pd.DataFrame:
    """Three real OHLCV symbols over six months, sorted by date with the symbols shuffled within each date."""
    bars = pd.concat([load_source(source, [], "2010-01-01", "2010-06-30")
                      for source in ("arch_sp500", "arch_nasdaq", "backtesting_goog")], ignore_index=True)
    key = np.random.default_rng(0).random(len(bars))
    return bars.assign(_k=key).sort_values(["timestamp", "_k"]).drop(columns="_k").reset_index(drop=True)


def test_a_file_sorted_by_date_passes_with_its_own_row_minimum(tmp_path: Path) -> None:
    bars = _three_symbols_by_date()
    assert not bars.groupby("timestamp")["symbol"].apply(lambda s: s.is_monotonic_increasing).all()
    path = tmp_path / "three.csv"
    bars.to_csv(path, index=False)
    refused = runner.invoke(app, ["data", "validate", str(path), "--params", str(tmp_path / "none.yaml")])
    assert refused.exit_code == 1
    assert "min_rows_per_symbol=300" in refused.output and "out_of_order" not in refused.output
    assert "min_rows_per_symbol=300 (default)" in refused.output  # the limits it used, and where from
    ok = runner.invoke(app, ["data", "validate", str(path), "--min-rows", "100",
                             "--params", str(tmp_path / "none.yaml")])
    assert ok.exit_code == 0, ok.output
    assert f"{len(bars)} rows passed" in ok.output
    assert "min_rows_per_symbol=100 (--min-rows)" in ok.output and "max_abs_return=0.7 (default)" in ok.output


def test_flags_override_the_params_file_which_overrides_defaults(tmp_path: Path) -> None:
    bars = _three_symbols_by_date()
    path = tmp_path / "three.csv"
    bars.to_csv(path, index=False)
    limits = tmp_path / "limits.yaml"
    limits.write_text("validate:\n  min_rows_per_symbol: 100\n  max_abs_return: 0.01\n")
    tight = runner.invoke(app, ["data", "validate", str(path), "--params", str(limits)])
    assert tight.exit_code == 1 and "max_abs_return=0.01" in tight.output
    assert f"max_abs_return=0.01 ({limits})" in tight.output
    loose = runner.invoke(app, ["data", "validate", str(path), "--params", str(limits), "--max-abs-return", "0.5"])
    assert loose.exit_code == 0, loose.output
    assert "max_abs_return=0.5 (--max-abs-return)" in loose.output
    assert f"min_rows_per_symbol=100 ({limits})" in loose.output
    bad = runner.invoke(app, ["data", "validate", str(path), "--params", str(limits), "--max-stale-run", "0"])
    assert bad.exit_code == 2 and "--max-stale-run" in bad.output


def test_a_spike_is_reported_at_its_row_in_the_file() -> None:
    bars = _three_symbols_by_date()
    row = int(bars.index[bars["symbol"] == "GOOG"][50])
    bars.loc[row, "close"] *= 3.0
    bars.loc[row, "high"] *= 3.0
    report = validate_file_bars(bars, ValidateParams(min_rows_per_symbol=100), name="three")
    assert not report.success
    (spike,) = [f for f in report.failures if f.column == "abs_return"]
    assert spike.symbol == "GOOG" and spike.examples[0]["row"] == row + 1
    assert spike.examples[0]["timestamp"] == bars.loc[row, "timestamp"].isoformat()


def test_order_is_reported_only_where_a_symbol_goes_back_in_time() -> None:
    bars = _three_symbols_by_date()
    by_symbol = bars.sort_values(["symbol", "timestamp"], ascending=[False, True]).reset_index(drop=True)
    assert validate_file_bars(by_symbol, ValidateParams(min_rows_per_symbol=100)).success  # any symbol order
    pasted = pd.concat([bars.iloc[200:], bars.iloc[:200]], ignore_index=True)  # two exports pasted together
    report = validate_file_bars(pasted, ValidateParams(min_rows_per_symbol=100))
    assert not report.success
    failures = [f for f in report.failures if f.expectation == BACKWARDS]
    assert sorted(f.symbol for f in failures) == ["GOOG", "NASDAQ", "SP500"]
    head = bars["symbol"].iloc[:200].reset_index(drop=True)
    for f in failures:  # one jump back per symbol: its first row of the second export, numbered as in the file
        assert f.unexpected_count == 1
        assert f.examples[0]["row"] == len(bars) - 200 + int(head[head == f.symbol].index[0]) + 1
    assert [f for f in report.failures if f.expectation != BACKWARDS] == []  # sorted, the data is clean
