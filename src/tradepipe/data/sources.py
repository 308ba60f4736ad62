"""Sources of market data selected by name in params.yaml: bundled offline sets, files, S3, yfinance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tradepipe.config import DataParams
from tradepipe.core.schema import ohlcv_to_canonical, to_canonical
from tradepipe.data.reader import BarsFileError


@dataclass(frozen=True)
class Bundled:
    """A real data set shipped inside a PyPI package: no network needed."""

    load: Callable[[], pd.DataFrame]
    ohlcv: bool


def _skfolio_sp500() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return to_canonical(load_sp500_dataset())


def _skfolio_sp500_index() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_index

    return to_canonical(load_sp500_index())


def _arch(name: str, symbol: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import importlib

        frame = importlib.import_module(f"arch.data.{name}").load()
        return ohlcv_to_canonical(frame, symbol)  # 'Close' as published; 'Adj Close' is dropped

    return load


def _backtesting(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from backtesting import test

        return ohlcv_to_canonical(getattr(test, name), name)

    return load


BUNDLED: dict[str, Bundled] = {
    "skfolio_sp500": Bundled(_skfolio_sp500, ohlcv=False),  # 20 S&P 500 stocks, daily closes 1990-2022
    "skfolio_sp500_index": Bundled(_skfolio_sp500_index, ohlcv=False),
    "arch_sp500": Bundled(_arch("sp500", "SP500"), ohlcv=True),  # index OHLCV 1999-2018
    "arch_nasdaq": Bundled(_arch("nasdaq", "NASDAQ"), ohlcv=True),
    "backtesting_goog": Bundled(_backtesting("GOOG"), ohlcv=True),  # daily OHLCV 2004-2013
    "backtesting_eurusd": Bundled(_backtesting("EURUSD"), ohlcv=True),  # hourly bars 2017-2018
}
EXTERNAL = ("files", "s3", "yfinance")


def has_ohlcv(source: str, data: DataParams | None = None) -> bool:
    """Whether a source's bars have open/high/low/volume: decides ``features.ohlcv: null``.

    Bundled sets and yfinance are known. For ``files`` it is decided from the columns the files at
    ``data.path`` have (headers only, mapped through ``data.format.columns``): true when every file has all
    four; a wide layout is close-only. S3 objects are not read to decide it (that would need the network
    whenever params are loaded): S3 is close-only unless ``features.ohlcv: true``.
    """
    if source == "files" and data is not None:
        return _files_have_ohlcv(data)
    return source == "yfinance" or (source in BUNDLED and BUNDLED[source].ohlcv)


def _files_have_ohlcv(cfg: DataParams) -> bool:
    from tradepipe.data.files import bar_files, header

    if cfg.format.layout == "wide" or not cfg.path:
        return False
    try:
        files = bar_files(Path(cfg.path))
    except BarsFileError:
        return False  # ingest names the problem
    wanted = {"open", "high", "low", "volume"}
    return all(wanted <= {cfg.format.columns.get(name, name) for name in header(path)} for path in files)


def select(bars: pd.DataFrame, symbols: list[str] | None, start: str | None, end: str | None,
           source: str) -> pd.DataFrame:
    """Keep the requested symbols and date range; refuse symbols the source lacks."""
    if symbols:
        missing = sorted(set(symbols) - set(bars["symbol"]))
        if missing:
            raise ValueError(f"data.symbols {missing} are not in source {source!r}; "
                             f"it has {sorted(bars['symbol'].unique())}")
        bars = bars[bars["symbol"].isin(symbols)]
    if start:
        bars = bars[bars["timestamp"] >= pd.Timestamp(start, tz="UTC")]
    if end:
        bars = bars[bars["timestamp"] < pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)]
    return bars.reset_index(drop=True)


def load_source(name: str, symbols: list[str] | None = None, start: str | None = None,
                end: str | None = None) -> pd.DataFrame:
    """Load a bundled source as canonical bars, optionally filtered by symbols and date range."""
    if name not in BUNDLED:
        raise ValueError(f"data.source {name!r} is unknown; choose one of {sorted([*BUNDLED, *EXTERNAL])}")
    return select(BUNDLED[name].load(), symbols, start, end, name)


def fetch(cfg: DataParams) -> pd.DataFrame:
    """Canonical bars from the source ``cfg.source`` with its options, filtered by symbols and dates."""
    if cfg.source == "files":
        from tradepipe.data.files import read_bars_path

        if not cfg.path:
            raise ValueError("data.source 'files' needs data.path (a .csv/.parquet file or a folder)")
        bars = read_bars_path(cfg.path, cfg.format)
    elif cfg.source == "s3":
        from tradepipe.data.s3 import read_s3_bars

        bars = read_s3_bars(cfg.s3, cfg.format)
    elif cfg.source == "yfinance":
        from tradepipe.data.yahoo import download

        return download(cfg.symbols, cfg.start, cfg.end, cfg.yfinance)
    else:
        return load_source(cfg.source, cfg.symbols or None, cfg.start, cfg.end)
    return select(bars, cfg.symbols or None, cfg.start, cfg.end, cfg.source)
