"""Champion against challenger on identical bars: the bars after both were fitted.

The challenger's out-of-sample returns are its backtest's walk-forward (each bar decided by a fit on the bars
before its window). The champion is the registered live policy, fitted on every bar up to its ``fit_data_end``
tag; on those bars its figures are in sample and the test span's figures are what chose it, so the two are
compared only on the bars after that end, where both are out of sample: the champion's policy is replayed on the
challenger's bars (warmed up on the ``warmup_bars`` before, executed with the backtest's costs and financing)
and both Sharpes are measured over exactly the same fills. Fewer than ``register.min_compare_bars`` such bars:
not compared (the gate says so); nothing from the test span decides between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradepipe.agents.policy import TradingPolicy
from tradepipe.core.execution import Financing, execute
from tradepipe.core.metrics import sharpe_ratio

WARMUP_BARS = 300  # history before the fresh bars: the longest indicator (SMA 200) plus the predictor's window


@dataclass(frozen=True)
class Comparison:
    """Both Sharpes over the same ``bars`` fresh fills (from ``start``); NaN Sharpes when there are none."""

    version: str
    fitted_until: pd.Timestamp
    bars: int
    start: pd.Timestamp | None
    challenger_sharpe: float
    champion_sharpe: float

    def check(self, min_bars: int) -> tuple[bool, str, bool]:
        """``(ok, text, compared)`` of the gate's champion check: with fewer than ``min_bars`` fresh bars it passes,
        saying that nothing was compared."""
        if self.bars < min_bars:
            return True, (f"champion v{self.version} not compared: {self.bars} bars after its fit end "
                          f"{self.fitted_until.date()} (fewer than register.min_compare_bars = {min_bars}); the "
                          "test span's figures chose it, so they are not compared"), False
        ok = self.challenger_sharpe > self.champion_sharpe
        return ok, (f"Sharpe {self.challenger_sharpe:.3f} vs champion v{self.version} {self.champion_sharpe:.3f} on "
                    f"the same {self.bars} bars from {self.start.date() if self.start else '-'} (after both were "
                    "fitted)"), True


def fresh(returns: pd.Series, fitted_until: pd.Timestamp) -> pd.Series:
    """``returns`` on the bars after ``fitted_until``."""
    return returns[returns.index > fitted_until]


def replay(policy: TradingPolicy, bars: pd.DataFrame, fitted_until: pd.Timestamp, financing: Financing | None = None,
           warmup_bars: int = WARMUP_BARS) -> pd.Series:
    """Net returns of ``policy`` on the bars of ``bars`` after ``fitted_until``: rolled out from ``warmup_bars``
    before them (decisions at a bar use bars up to it only), executed with its spec's costs and ``financing``."""
    bars = bars[bars["symbol"].isin(policy.spec.symbols)]
    days = pd.DatetimeIndex(sorted(bars["timestamp"].unique()))
    first = int(days.searchsorted(fitted_until, side="right"))
    if first >= len(days):
        return pd.Series([], index=pd.DatetimeIndex([], tz=days.tz), name="champion", dtype=float)
    history = max(0, first - warmup_bars - WARMUP_BARS)  # the features' own warm-up, then the policy's
    market = policy.market(bars[bars["timestamp"] >= days[history]])
    window = market.window(days[max(history, first - warmup_bars)])
    run = execute(policy.targets(window), window.returns, policy.spec.cost_rate, financing)
    returns = pd.Series(run.net_returns[1:], index=window.timestamps[1:], name="champion")
    return fresh(returns, fitted_until)


def compare(version: str, fitted_until: pd.Timestamp, challenger: pd.Series, champion: pd.Series,
            periods_per_year: int = 252) -> Comparison:
    """The two Sharpes over the fills both series have after ``fitted_until``."""
    common = fresh(challenger, fitted_until).index.intersection(champion.index)
    if len(common) < 2:
        return Comparison(version, fitted_until, len(common), None, float("nan"), float("nan"))
    return Comparison(version, fitted_until, len(common), pd.Timestamp(common[0]),
                      sharpe_ratio(challenger.loc[common], periods_per_year=periods_per_year),
                      sharpe_ratio(champion.loc[common], periods_per_year=periods_per_year))


def no_comparison(version: str, fitted_until: pd.Timestamp, bars: int = 0) -> Comparison:
    """A champion with only ``bars`` (too few) bars after its fit end: nothing compared."""
    return Comparison(version, fitted_until, bars, None, np.nan, np.nan)
