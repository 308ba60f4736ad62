"""The out-of-distribution guard of a paper decision: score the bar against the policy's training window and,
beyond ``trading.ood_threshold``, replace the decision by holding the book or going to cash (``trading.ood_action``).

The backtest has no guard: paper trading reproduces it on every bar the guard lets through, and each flagged bar is
an ``ood`` event saying what the policy proposed and what was done instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import TradingParams
from tradepipe.core.market import Market
from tradepipe.core.types import Array
from tradepipe.features import feature_columns
from tradepipe.risk.ood import Outlier
from tradepipe.trading.decision import Decided

__all__ = ["Verdict", "apply_guard", "check"]


@dataclass(frozen=True)
class Verdict:
    """A bar's OOD score and most extreme column (None: the policy carries no reference), and whether it is
    flagged."""

    outlier: Outlier | None
    flagged: bool
    message: str


def _column(policy: TradingPolicy, market: Market, column: int) -> str:
    names = feature_columns(policy.predictor.features)
    n_features = len(names)
    n_assets = len(market.symbols)
    if column < n_assets * n_features:
        return f"{market.symbols[column // n_features]} {names[column % n_features]}"
    return f"{market.symbols[column - n_assets * n_features]} forecast"


def check(policy: TradingPolicy, market: Market, params: TradingParams) -> Verdict:
    """The guard's verdict on the last bar of ``market`` (the bar being decided)."""
    if policy.ood is None:
        return Verdict(None, False, "the policy carries no OOD reference (registered before the guard existed)")
    outlier = policy.ood.outlier(market, len(market.timestamps) - 1)
    flagged = params.ood_threshold is not None and outlier.score > params.ood_threshold
    limit = "off" if params.ood_threshold is None else f"{params.ood_threshold:g}"
    message = (f"OOD score {outlier.score:.2f} (threshold {limit}); most extreme: "
               f"{_column(policy, market, outlier.column)} at z = {outlier.z:+.1f}")
    if flagged:
        message += "; " + ("the book is held (no orders)" if params.ood_action == "hold" else "the book goes to cash")
    return Verdict(outlier, flagged, message)


def apply_guard(decided: Decided, book: Array, verdict: Verdict, params: TradingParams) -> Decided:
    """``decided`` unchanged, or, when flagged, its target replaced by ``book`` (hold) or all cash; the proposed
    book and the risk state stay what the policy and the risk manager decided."""
    if not verdict.flagged:
        return decided
    if params.ood_action == "hold":
        return replace(decided, target=np.asarray(book, dtype=np.float64).copy())
    cash = np.zeros_like(decided.target)
    cash[-1] = 1.0
    return replace(decided, target=cash)
