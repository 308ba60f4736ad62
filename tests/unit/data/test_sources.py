"""Every source yields canonical bars: bundled sets, files (long, wide, mapped, local time), the archive merge."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests import DATA
from tradepipe.config import DataParams, FormatParams
from tradepipe.core.schema import to_wide
from tradepipe.data.incremental import content_hash, merge_bars
from tradepipe.data.reader import BarsFileError
from tradepipe.data.sources import fetch, has_ohlcv, load_source


@pytest.mark.parametrize(("name", "symbol", "rows", "first", "last"), [
    ("arch_sp500", "SP500", 5031, "1999-01-04", "2018-12-31"),
    ("arch_nasdaq", "NASDAQ", 5031, "1999-01-04", "2018-12-31"),
    ("backtesting_goog", "GOOG", 2148, "2004-08-19", "2013-03-01"),
    ("backtesting_eurusd", "EURUSD", 5000, "2017-04-19 09:00", "2018-02-07 15:00"),
])
def test_bundled_ohlcv_sources(name: str, symbol: str, rows: int, first: str, last: str) -> None:
    bars = load_source(name)
    assert list(bars.columns) == ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    assert len(bars) == rows and set(bars["symbol"]) == {symbol} and has_ohlcv(name)
    assert bars["timestamp"].iloc[0] == pd.Timestamp(first, tz="UTC")
    assert bars["timestamp"].iloc[-1] == pd.Timestamp(last, tz="UTC")
    assert (bars["high"] >= bars["low"]).all() and bars[["open", "close"]].notna().all().all()


def test_bundled_values_match_the_packages() -> None:
    from arch.data import sp500
    from backtesting.test import GOOG

    assert load_source("arch_sp500")["close"].iloc[0] == sp500.load()["Close"].iloc[0] == pytest.approx(1228.099976)
    goog = load_source("backtesting_goog", None, "2004-08-20", "2004-08-20")
    assert goog[["open", "high", "low", "close", "volume"]].iloc[0].tolist() == GOOG.iloc[1].tolist()


def test_skfolio_universe_is_close_only(bars: pd.DataFrame) -> None:
    full = load_source("skfolio_sp500")
    assert full["symbol"].nunique() == 20 and list(full.columns) == ["timestamp", "symbol", "close"]
    assert not has_ohlcv("skfolio_sp500") and not has_ohlcv("files")


def test_unknown_source_and_symbol_are_refused() -> None:
    with pytest.raises(ValueError, match="'nope' is unknown.*arch_sp500.*s3"):
        fetch(DataParams(source="nope"))
    with pytest.raises(ValueError, match=r"\['ZZZ'\] are not in source 'arch_sp500'"):
        fetch(DataParams(source="arch_sp500", symbols=["ZZZ"]))


def test_files_folder_of_long_csv_and_parquet(tmp_path: Path, bars: pd.DataFrame) -> None:
    aapl, rest = bars[bars["symbol"] == "AAPL"], bars[bars["symbol"] != "AAPL"]
    aapl.to_csv(tmp_path / "aapl.csv", index=False)
    rest.to_parquet(tmp_path / "rest.parquet", index=False)
    got = fetch(DataParams(source="files", path=str(tmp_path), start="2010-01-01", end="2013-12-31"))
    pd.testing.assert_frame_equal(got, bars, check_exact=False, rtol=1e-12)


def test_files_wide_layout(tmp_path: Path, bars: pd.DataFrame) -> None:
    wide = to_wide(bars)
    wide.index = wide.index.strftime("%Y-%m-%d")
    wide.rename_axis("Date").reset_index().to_csv(tmp_path / "closes.csv", index=False)
    fmt = FormatParams(layout="wide", columns={"Date": "timestamp"})
    got = fetch(DataParams(source="files", path=str(tmp_path / "closes.csv"), format=fmt))
    pd.testing.assert_frame_equal(got, bars, check_exact=False, rtol=1e-12)


def test_files_mapped_columns_local_timezone_symbol_from_name(tmp_path: Path) -> None:
    eurusd = load_source("backtesting_eurusd", None, "2017-06-01", "2017-06-30")
    frame = eurusd.drop(columns="symbol").rename(columns=str.capitalize).rename(columns={"Timestamp": "Time"})
    frame["Time"] = frame["Time"].dt.tz_convert("Europe/Berlin").dt.strftime("%Y-%m-%d %H:%M")  # naive local time
    frame.to_csv(tmp_path / "EURUSD.csv", index=False)
    fmt = FormatParams(columns={"Time": "timestamp", "Open": "open", "High": "high", "Low": "low",
                                "Close": "close", "Volume": "volume"}, timezone="Europe/Berlin")
    got = fetch(DataParams(source="files", path=str(tmp_path), format=fmt))
    pd.testing.assert_frame_equal(got, eurusd, check_exact=False, rtol=1e-12)


def test_bad_file_value_names_file_column_row(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("Date,Close\n2020-01-02,1.5\n2020-01-03,oops\n")
    fmt = FormatParams(columns={"Date": "timestamp", "Close": "close"})
    with pytest.raises(BarsFileError, match=r"x\.csv: column 'close', row 2: 'oops' is not a number"):
        fetch(DataParams(source="files", path=str(tmp_path / "x.csv"), format=fmt))
    with pytest.raises(BarsFileError, match="no such file"):
        fetch(DataParams(source="files", path=str(tmp_path / "missing.csv")))


def test_merge_appends_new_bars_and_reports_changed_history(bars: pd.DataFrame) -> None:
    old = bars[bars["timestamp"] < pd.Timestamp("2013-01-01", tz="UTC")].reset_index(drop=True)
    revised = bars.copy()
    hit = (revised["symbol"] == "KO") & (revised["timestamp"] == pd.Timestamp("2011-03-01", tz="UTC"))
    revised.loc[hit, "close"] = 999.0
    merge = merge_bars(old, revised)
    assert merge.appended == len(bars) - len(old)
    assert merge.changes[["symbol", "column"]].values.tolist() == [["KO", "close"]]
    assert merge.changes["incoming"].item() == 999.0 and merge.changes["stored"].item() == old.loc[
        (old["symbol"] == "KO") & (old["timestamp"] == pd.Timestamp("2011-03-01", tz="UTC")), "close"].item()
    pd.testing.assert_frame_equal(merge.bars, bars)  # stored value kept, new year appended
    assert content_hash(merge.bars) == content_hash(bars) != content_hash(revised)
    again = merge_bars(merge.bars, bars)
    assert again.appended == 0 and again.changes.empty
    pd.testing.assert_frame_equal(again.bars, merge.bars)


def test_merge_refuses_duplicate_incoming_bars(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="share a \\(timestamp, symbol\\)"):
        merge_bars(None, pd.concat([bars, bars.iloc[:1]]))


def test_files_offsets_that_change_across_dst_are_read_as_utc(tmp_path: Path) -> None:
    # New York closes across the 2020-03-08 DST change: -05:00 then -04:00
    (tmp_path / "ny.csv").write_text("Date,Close\n2020-03-06T16:00:00-05:00,10\n2020-03-09T16:00:00-04:00,11\n")
    fmt = FormatParams(columns={"Date": "timestamp", "Close": "close"})
    got = fetch(DataParams(source="files", path=str(tmp_path / "ny.csv"), start="2020-01-01", format=fmt))
    assert got["timestamp"].tolist() == [pd.Timestamp("2020-03-06 21:00", tz="UTC"),
                                         pd.Timestamp("2020-03-09 20:00", tz="UTC")]
    assert got["symbol"].tolist() == ["ny", "ny"]


def test_files_naive_times_are_local_and_a_naive_aware_mix_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ny.csv").write_text("Date,Close\n2020-03-06 16:00,10\n2020-03-09 16:00,11\n")
    fmt = FormatParams(columns={"Date": "timestamp", "Close": "close"}, timezone="America/New_York")
    got = fetch(DataParams(source="files", path=str(tmp_path / "ny.csv"), start="2020-01-01", format=fmt))
    assert got["timestamp"].tolist() == [pd.Timestamp("2020-03-06 21:00", tz="UTC"),
                                         pd.Timestamp("2020-03-09 20:00", tz="UTC")]
    (tmp_path / "ny.csv").write_text("Date,Close\n2020-03-06T16:00:00-05:00,10\n2020-03-09 16:00,11\n")
    with pytest.raises(BarsFileError, match=r"ny\.csv: column 'timestamp', row 2: '2020-03-09 16:00' has no UTC "
                                            r"offset but row 1 '2020-03-06T16:00:00-05:00' has one"):
        fetch(DataParams(source="files", path=str(tmp_path / "ny.csv"), start="2020-01-01", format=fmt))


def test_files_rows_without_symbol_are_refused_naming_file_and_rows() -> None:
    corpus = DATA / "corrupt" / "missing_symbol.csv"
    with pytest.raises(BarsFileError, match=r"missing_symbol\.csv: column 'symbol' is empty in 1 row\(s\) \(row 6\)"):
        fetch(DataParams(source="files", path=str(corpus), start="2020-01-01"))


def test_files_wide_layout_with_symbols_starting_on_different_dates(tmp_path: Path) -> None:
    (tmp_path / "closes.csv").write_text("Date,AAA,BBB\n2020-01-02,1.0,\n2020-01-03,1.1,\n2020-01-06,1.2,5.0\n"
                                         "2020-01-07,1.3,5.1\n")
    fmt = FormatParams(layout="wide", columns={"Date": "timestamp"})
    got = fetch(DataParams(source="files", path=str(tmp_path / "closes.csv"), start="2020-01-01", format=fmt))
    assert got[["symbol", "close"]].values.tolist() == [["AAA", 1.0], ["AAA", 1.1], ["AAA", 1.2], ["BBB", 5.0],
                                                         ["AAA", 1.3], ["BBB", 5.1]]
    assert got["close"].notna().all()
    (tmp_path / "closes.csv").write_text("Date,AAA\n2020-01-02,1.0\n2020-01-03,n/a?\n")
    with pytest.raises(BarsFileError, match="'n/a\\?' is not a number"):
        fetch(DataParams(source="files", path=str(tmp_path / "closes.csv"), start="2020-01-01", format=fmt))


def test_files_ohlcv_is_decided_from_the_columns_the_files_have(tmp_path: Path) -> None:
    goog = load_source("backtesting_goog", None, "2010-01-01", "2010-03-31")
    (tmp_path / "ohlcv").mkdir()
    goog.to_csv(tmp_path / "ohlcv" / "goog.csv", index=False)
    goog.to_parquet(tmp_path / "ohlcv" / "goog2.parquet", index=False)
    assert has_ohlcv("files", DataParams(source="files", path=str(tmp_path / "ohlcv")))
    assert has_ohlcv("files", DataParams(source="files", path=str(tmp_path / "ohlcv" / "goog.csv")))
    mapped = goog.drop(columns="symbol").rename(columns=str.capitalize)
    mapped.to_csv(tmp_path / "GOOG.csv", index=False)
    fmt = FormatParams(columns={c.capitalize(): c for c in ("timestamp", "open", "high", "low", "close", "volume")})
    assert has_ohlcv("files", DataParams(source="files", path=str(tmp_path / "GOOG.csv"), format=fmt))
    assert not has_ohlcv("files", DataParams(source="files", path=str(tmp_path / "GOOG.csv")))  # unmapped names
    (tmp_path / "ohlcv" / "close_only.csv").write_text("timestamp,symbol,close\n2010-01-04,X,1.0\n")
    assert not has_ohlcv("files", DataParams(source="files", path=str(tmp_path / "ohlcv")))  # not every file
    assert not has_ohlcv("files", DataParams(source="files", path=str(tmp_path / "missing")))
    assert not has_ohlcv("files", DataParams(source="files", path=str(tmp_path / "ohlcv"),
                                             format=FormatParams(layout="wide")))
    assert not has_ohlcv("s3", DataParams(source="s3"))
