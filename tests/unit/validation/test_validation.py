"""The validation gate: file reader, GX suite on canonical bars, report and Data Docs.

tests/data/corrupt/ holds one tiny file per way a bars file goes wrong, plus clean_reference.csv
(12 clean OHLCV bars: AAA and BBB, 2020-01-02 .. 2020-01-09) from which each corrupt file was derived.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.corpus import CLEAN, CORPUS, FILE_ERRORS, PARAMS, SUITE_FAILURES
from tradepipe.config import ValidateParams
from tradepipe.data.reader import BarsFileError, read_bars_file
from tradepipe.data.sources import load_source
from tradepipe.validation import ValidationReport, validate_bars, write_data_docs


def test_corpus_and_cases_match() -> None:
    files = {p.name for p in CORPUS.iterdir()} - {CLEAN.name}
    assert files == set(FILE_ERRORS) | set(SUITE_FAILURES)
    assert len(files) >= 15
    assert all(p.stat().st_size < 4096 for p in CORPUS.iterdir())


@pytest.mark.parametrize("name", sorted(FILE_ERRORS))
def test_unreadable_file_is_refused_with_file_column_and_row(name: str) -> None:
    with pytest.raises(BarsFileError) as info:
        read_bars_file(CORPUS / name)
    for fragment in FILE_ERRORS[name]:
        assert fragment in str(info.value)


@pytest.mark.parametrize("name", sorted(SUITE_FAILURES))
def test_corrupt_bars_fail_the_suite_naming_check_symbol_and_row(name: str) -> None:
    report = validate_bars(read_bars_file(CORPUS / name), PARAMS, name=name)
    assert report.success is False
    found = {(f.expectation, f.column, f.symbol): f for f in report.failures}
    assert set(found) == {(e, c, s) for e, c, s, _ in SUITE_FAILURES[name]}
    summary = report.summary()
    assert summary.startswith(f"{name}: FAILED")
    for expectation, column, symbol, example in SUITE_FAILURES[name]:
        failure = found[(expectation, column, symbol)]
        assert failure.examples[0].items() >= example.items()
        assert failure.hint
        assert f"{expectation} on {column}" in summary
        if symbol is not None:
            assert f"symbol {symbol}: {failure.unexpected_count} row(s)" in summary
        assert f"row={example['row']} " in summary


def test_clean_file_reads_to_canonical_bars_and_passes() -> None:
    bars = read_bars_file(CLEAN)
    assert list(bars.columns) == ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    assert str(bars["timestamp"].dtype) == "datetime64[us, UTC]"
    assert bars.loc[0, "timestamp"] == pd.Timestamp("2020-01-02", tz="UTC")  # naive dates are read as UTC
    assert bars["symbol"].tolist()[:2] == ["AAA", "BBB"]
    assert bars["close"].tolist()[:4] == [100.0, 50.0, 101.5, 50.6]
    report = validate_bars(bars, PARAMS)
    assert report.success is True
    assert report.failures == []
    assert (report.n_rows, report.evaluated) == (12, 34)
    assert report.summary() == "bars: passed all 34 checks on 12 rows"


def test_parquet_with_offsets_reads_like_csv(tmp_path: Path) -> None:
    bars = read_bars_file(CLEAN)
    shifted = bars.assign(timestamp=bars["timestamp"].dt.tz_convert("America/New_York"))
    shifted.to_parquet(tmp_path / "bars.parquet")
    pd.testing.assert_frame_equal(read_bars_file(tmp_path / "bars.parquet"), bars)
    text = "timestamp,symbol,close\n2020-01-02T00:00:00-05:00,AAA,1.5\n2020-01-03T00:00:00Z,AAA,1.6\n"
    (tmp_path / "offsets.csv").write_text(text)
    assert read_bars_file(tmp_path / "offsets.csv")["timestamp"].tolist() == [
        pd.Timestamp("2020-01-02 05:00", tz="UTC"), pd.Timestamp("2020-01-03", tz="UTC")]


def test_unknown_extension_and_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BarsFileError, match=r"bars\.txt: unsupported file type"):
        read_bars_file(tmp_path / "bars.txt")
    with pytest.raises(BarsFileError, match=r"nope\.csv: cannot be read"):
        read_bars_file(tmp_path / "nope.csv")


def test_symbols_that_look_like_missing_values_are_kept(tmp_path: Path) -> None:
    (tmp_path / "na.csv").write_text("timestamp,symbol,close\n2020-01-02,NA,1.5\n2020-01-02,,1.6\n")
    assert read_bars_file(tmp_path / "na.csv")["symbol"].tolist()[0] == "NA"
    assert pd.isna(read_bars_file(tmp_path / "na.csv")["symbol"].iloc[1])


@settings(max_examples=25, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 545), st.integers(0, 8), st.binary(max_size=3)),
                      min_size=1, max_size=4))
def test_mangled_file_is_refused_or_reported_never_crashes(edits: list[tuple[int, int, bytes]]) -> None:
    data = CLEAN.read_bytes()
    for pos, cut, insert in edits:
        data = data[:pos] + insert + data[pos + cut:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mangled.csv"
        path.write_bytes(data)
        try:
            bars = read_bars_file(path)
        except BarsFileError as exc:
            assert str(path) in str(exc)
            return
    report = validate_bars(bars, PARAMS)
    assert report.success == (report.failures == [])
    json.dumps(report.to_dict())


def test_real_skfolio_data_passes_with_default_params() -> None:
    bars = load_source("skfolio_sp500")
    report = validate_bars(bars, ValidateParams(), name="skfolio_sp500")
    assert report.success is True, report.summary()
    assert (report.n_rows, report.evaluated) == (166260, 18)


def _series(closes: list[float], days: list[int] | None = None) -> pd.DataFrame:
    days = days if days is not None else list(range(len(closes)))
    return pd.DataFrame({
        "timestamp": pd.Timestamp("2021-03-01", tz="UTC") + pd.to_timedelta(days, unit="D"),
        "symbol": "XYZ",
        "close": closes,
    })


def _with_reference(xyz: pd.DataFrame, days: int) -> pd.DataFrame:
    """XYZ plus a symbol REF with a bar every day: the universe's session grid, sorted canonically."""
    ref = _series([100.0 + 0.1 * i for i in range(days)]).assign(symbol="REF")
    return pd.concat([xyz, ref]).sort_values(["timestamp", "symbol"], ignore_index=True)


def test_thresholds_are_inclusive() -> None:
    params = ValidateParams(min_rows_per_symbol=5, max_gap_sessions=9, max_abs_return=0.5, max_stale_run=3)
    at_limit = _with_reference(_series([10.0, 15.0, 15.0, 15.0, 7.5], days=[0, 10, 11, 12, 22]), 23)
    assert validate_bars(at_limit, params).success is True
    beyond = _with_reference(_series([10.0, 15.0, 15.0, 15.0, 15.0, 7.4], days=[0, 11, 12, 13, 14, 15]), 16)
    failures = validate_bars(beyond, params).failures
    by_column = {f.column: f for f in failures}
    assert set(by_column) == {"gap_sessions", "abs_return", "stale_run"}
    assert {f.symbol for f in failures} == {"XYZ"}
    gap = by_column["gap_sessions"].examples[0]
    assert (gap["gap_sessions"], gap["gap_from"], gap["timestamp"]) == (
        10.0, "2021-03-01T00:00:00+00:00", "2021-03-12T00:00:00+00:00")
    assert by_column["abs_return"].examples[0]["timestamp"] == "2021-03-16T00:00:00+00:00"
    assert by_column["stale_run"].examples[0]["stale_run"] == 4.0


def test_gap_counts_sessions_of_the_universe_not_calendar_days() -> None:
    params = ValidateParams(min_rows_per_symbol=1, max_gap_sessions=0)
    # hourly bars: a weekend without any bar is no gap; an hour the other symbol traded is one
    hours = pd.date_range("2021-03-05 20:00", periods=3, freq="h", tz="UTC").append(
        pd.date_range("2021-03-07 22:00", periods=3, freq="h", tz="UTC"))
    both = pd.DataFrame({"timestamp": hours.repeat(2), "symbol": ["AAA", "BBB"] * 6,
                         "close": 1.0 + 0.01 * np.arange(12)})
    assert validate_bars(both, params).success is True
    holed = both.drop(index=[5]).reset_index(drop=True)  # BBB misses 2021-03-05 22:00
    (failure,) = validate_bars(holed, params).failures
    assert (failure.column, failure.symbol, failure.unexpected_count) == ("gap_sessions", "BBB", 1)
    assert failure.examples[0] == {"row": 7, "timestamp": "2021-03-07T22:00:00+00:00", "symbol": "BBB",
                                   "gap_sessions": 1.0, "gap_from": "2021-03-05T21:00:00+00:00"}
    summary = validate_bars(holed, params).summary()
    assert "sessions of the universe" in summary and "gap_from=2021-03-05T21:00:00+00:00" in summary


def test_flagged_large_move_is_exempt_from_the_return_bound() -> None:
    move = _series([10.0, 10.5, 25.0, 25.5, 26.0])  # +138% on day 2
    params = ValidateParams(min_rows_per_symbol=1, max_abs_return=0.5, return_flag_column="flag_large_move")
    refused = validate_bars(move, params).failures
    assert [(f.column, f.examples[0]["row"]) for f in refused] == [("abs_return", 3)]
    flagged = move.assign(flag_large_move=[False, False, True, False, False])
    assert validate_bars(flagged, params).success is True
    unflagged_spike = flagged.assign(close=[10.0, 10.5, 25.0, 60.0, 61.0])  # the flag covers its own bar only
    assert [f.examples[0]["row"] for f in validate_bars(unflagged_spike, params).failures] == [4]
    as_text = move.assign(flag_large_move=["no", "no", "yes", "no", "no"])
    failed = {(f.expectation, f.column) for f in validate_bars(as_text, params).failures}
    assert failed == {("expect_column_type_to_be", "flag_large_move"), ("expect_column_values_to_be_between",
                                                                         "abs_return")}


def test_rows_out_of_canonical_order_are_reported() -> None:
    bars = read_bars_file(CLEAN).iloc[[0, 1, 3, 2, 4, 5]].reset_index(drop=True)  # BBB before AAA on Jan 3
    (failure,) = validate_bars(bars, PARAMS.model_copy(update={"min_rows_per_symbol": 1})).failures
    assert (failure.column, failure.symbol, failure.examples[0]["row"]) == ("out_of_order", "AAA", 4)


def test_wrong_dtypes_and_missing_columns_in_memory() -> None:
    bars = _series([1.0, 2.0, 3.0]).assign(close=["1.0", "x", "3"])
    bars["timestamp"] = bars["timestamp"].dt.tz_convert("Europe/Paris")
    report = validate_bars(bars.drop(columns="symbol"), PARAMS)
    failed = {(f.expectation, f.column) for f in report.failures}
    assert failed == {
        ("expect_column_to_exist", "symbol"),
        ("expect_column_type_to_be", "timestamp"),
        ("expect_column_type_to_be", "close"),
    }
    hints = {f.column: f.hint for f in report.failures}
    assert "observed: datetime64[us, Europe/Paris]" in hints["timestamp"]
    assert "observed: str" in hints["close"]


def test_empty_frame_fails_row_count() -> None:
    report = validate_bars(_series([]), PARAMS)
    failed = [(f.expectation, f.symbol) for f in report.failures]
    assert failed == [("expect_table_row_count_to_be_between", None)]


def test_report_to_dict_is_json() -> None:
    report = validate_bars(read_bars_file(CORPUS / "nan_close.csv"), PARAMS, name="nan_close")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["success"] is False and data["n_rows"] == 12 and data["name"] == "nan_close"
    assert data["failures"][0]["examples"][0] == {
        "row": 8, "timestamp": "2020-01-07T00:00:00+00:00", "symbol": "BBB", "close": None}
    assert isinstance(report, ValidationReport)


def test_write_data_docs_renders_the_gx_result(tmp_path: Path) -> None:
    index = write_data_docs(read_bars_file(CORPUS / "spike.csv"), PARAMS, tmp_path / "docs")
    assert index == tmp_path / "docs" / "index.html"
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert len(pages) == 1
    page = pages[0].read_text(encoding="utf-8")
    assert "abs_return" in page and "9.07827788" in page  # the spike's return, as GX observed it


def test_flag_column_is_read_from_the_file_when_configured(tmp_path: Path) -> None:
    text = ("timestamp,symbol,close,flag_large_move\n2020-01-02,AAA,10.0,\n2020-01-03,AAA,10.5,false\n"
            "2020-01-06,AAA,25.0,true\n2020-01-07,AAA,25.5,0\n")
    (tmp_path / "move.csv").write_text(text)
    params = ValidateParams(min_rows_per_symbol=1, max_abs_return=0.5, return_flag_column="flag_large_move")
    bars = read_bars_file(tmp_path / "move.csv", "flag_large_move")
    assert bars["flag_large_move"].tolist() == [False, False, True, False]
    assert validate_bars(bars, params).success is True
    assert "flag_large_move" not in read_bars_file(tmp_path / "move.csv").columns
    (tmp_path / "move.csv").write_text(text.replace("true", "maybe"))
    with pytest.raises(BarsFileError, match=r"column 'flag_large_move', line 4 \(row 3\): 'maybe' is not a boolean"):
        read_bars_file(tmp_path / "move.csv", "flag_large_move")
