"""Optional yfinance source (``pip install tradepipe[yfinance]``); needs the network, so never used in tests."""

from __future__ import annotations

import pandas as pd

from tradepipe.config import YFinanceParams
from tradepipe.core.schema import ohlcv_to_canonical


def download(symbols: list[str], start: str, end: str, cfg: YFinanceParams) -> pd.DataFrame:
    """Daily (or ``cfg.interval``) OHLCV bars for ``symbols`` from Yahoo Finance as canonical bars."""
    if not symbols:
        raise ValueError("data.source 'yfinance' needs data.symbols (tickers)")
    try:
        import yfinance as yf
    except ImportError as exc:
        raise ValueError("data.source 'yfinance' needs the optional extra: pip install 'tradepipe[yfinance]'") from exc
    end_inclusive = (pd.Timestamp(end) + pd.Timedelta(days=1)).date().isoformat()
    frames = []
    for symbol in symbols:
        frame = yf.Ticker(symbol).history(start=start, end=end_inclusive, interval=cfg.interval,
                                          auto_adjust=cfg.auto_adjust)
        if frame.empty:
            raise ValueError(f"yfinance returned no bars for {symbol!r} between {start} and {end}")
        frames.append(ohlcv_to_canonical(frame, symbol))
    return pd.concat(frames, ignore_index=True).sort_values(["timestamp", "symbol"]).reset_index(drop=True)
