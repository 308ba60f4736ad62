"""Bundled, offline sources of real market data, selected by name in params.yaml."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from tradepipe.data.schema import to_canonical


def _skfolio_sp500() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return to_canonical(load_sp500_dataset())


def _skfolio_sp500_index() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_index

    return to_canonical(load_sp500_index())


SOURCES: dict[str, Callable[[], pd.DataFrame]] = {
    "skfolio_sp500": _skfolio_sp500,
    "skfolio_sp500_index": _skfolio_sp500_index,
}


def load_source(name: str, symbols: list[str] | None = None, start: str | None = None,
                end: str | None = None) -> pd.DataFrame:
    """Load a bundled source as canonical bars, optionally filtered by symbols and date range."""
    if name not in SOURCES:
        raise ValueError(f"data.source {name!r} is unknown; choose one of {sorted(SOURCES)}")
    bars = SOURCES[name]()
    if symbols:
        missing = sorted(set(symbols) - set(bars["symbol"]))
        if missing:
            raise ValueError(f"data.symbols {missing} are not in source {name!r}; "
                             f"it has {sorted(bars['symbol'].unique())}")
        bars = bars[bars["symbol"].isin(symbols)]
    if start:
        bars = bars[bars["timestamp"] >= pd.Timestamp(start, tz="UTC")]
    if end:
        bars = bars[bars["timestamp"] <= pd.Timestamp(end, tz="UTC")]
    return bars.reset_index(drop=True)
