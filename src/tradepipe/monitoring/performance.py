"""The champion's live performance: its weights over the most recent bars against the returns that followed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradepipe.agents.policy import TradingPolicy
from tradepipe.core.execution import execute
from tradepipe.core.metrics import max_drawdown, sharpe_ratio

WARMUP_BARS = 300  # history before the live window: the longest indicator (SMA 200) plus the predictor's window


def live_returns(policy: TradingPolicy, bars: pd.DataFrame, recent_bars: int,
                 fitted_until: pd.Timestamp | None = None) -> pd.Series:
    """Net returns of ``policy`` over the last ``recent_bars`` bars, executed as in the backtest (costs, fill lag).

    With ``fitted_until`` (the last bar the policy was fit on) the window keeps only the bars after it, so the
    returns are out of sample; empty when fewer than two such bars exist (the first bar only decides).
    """
    bars = bars[bars["symbol"].isin(policy.spec.symbols)].groupby("symbol").tail(recent_bars + WARMUP_BARS)
    market = policy.market(bars)
    if len(market.timestamps) < recent_bars:
        raise ValueError(f"only {len(market.timestamps)} bars available, the live window needs {recent_bars}")
    start = market.timestamps[-recent_bars]
    if fitted_until is not None:
        unseen = market.timestamps[market.timestamps > fitted_until]
        if len(unseen) < 2:
            return pd.Series([], index=pd.DatetimeIndex([], tz=market.timestamps.tz), name="live", dtype=float)
        start = max(start, unseen[0])
    window = market.window(start)
    run = execute(policy.targets(window), window.returns, policy.spec.cost_rate)
    return pd.Series(run.net_returns[1:], index=window.timestamps[1:], name="live")


def performance(returns: pd.Series, periods_per_year: int = 252) -> dict[str, float]:
    """Annualized Sharpe, max drawdown and total return of a return series."""
    return {"sharpe": sharpe_ratio(returns, periods_per_year=periods_per_year),
            "max_drawdown": max_drawdown(returns),
            "total_return": float(np.prod(1.0 + returns.to_numpy()) - 1.0),
            "bars": float(len(returns))}
