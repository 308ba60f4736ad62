"""From a target book to orders, the backtest's way, and the fail-safes every order and bar must pass.

Sizing (``size_orders``): at the fill bar's close the account holds ``shares`` worth ``equity``; the cost
``k`` (a fraction of equity) solves ``k = rate * sum |target * (1 - k) - drifted|`` (``core.execution``), and
each asset is traded to ``target * equity * (1 - k)``. With fractional shares, no band and no minimum, the
book after the fills holds exactly the target weights and the broker charges exactly ``k * equity``: the
backtest engine's arithmetic, in shares and cash.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tradepipe.config import TradingParams
from tradepipe.core.execution import cost_fraction
from tradepipe.core.types import Array

__all__ = ["Refusal", "bar_refusals", "order_refusals", "size_orders"]


@dataclass(frozen=True)
class Refusal:
    """A fail-safe that stopped a bar or an order: the rule, the symbol (when one) and what happened."""

    rule: str
    symbol: str | None
    message: str


def size_orders(target: Array, shares: Array, cash: float, prices: Array, cost_rate: float,
                params: TradingParams) -> Array:
    """Signed share quantities (N,) that take the book to ``target`` (N asset weights) at ``prices``."""
    value = shares * prices
    equity = cash + float(value.sum())
    if not equity > 0.0:
        return np.zeros_like(shares)
    drifted = value / equity
    k = cost_fraction(target, drifted, cost_rate)
    qty = (target * equity * (1.0 - k) - value) / prices
    qty[np.abs(target - drifted) < params.no_trade_band] = 0.0
    if not params.fractional:
        qty = np.trunc(qty)
    qty[np.abs(qty * prices) < params.min_order_notional] = 0.0
    return np.asarray(qty, dtype=np.float64)


def bar_refusals(symbols: list[str], closes: Array, last_closes: Array | None, params: TradingParams) -> list[Refusal]:
    """Why a bar's closes (N,) cannot be traded: missing, NaN or non-positive prices, moves beyond the price band."""
    out = [Refusal("price_invalid", s, f"close of {s} is {c!r}: missing, NaN or not positive")
           for s, c in zip(symbols, closes, strict=True) if not (np.isfinite(c) and c > 0.0)]
    if last_closes is not None and not out:
        move = np.abs(closes / last_closes - 1.0)
        out += [Refusal("price_band", s, f"close of {s} moved {m:.1%} from the last close, beyond the price band "
                        f"{params.price_band:.0%} (trading.price_band)")
                for s, m in zip(symbols, move, strict=True) if m > params.price_band]
    return out


def order_refusals(symbols: list[str], qty: Array, shares: Array, prices: Array, equity_after: float,
                   params: TradingParams) -> dict[int, Refusal]:
    """Orders (by asset index) a fail-safe rejects: notional above the maximum, or growing a position beyond the
    weight limit (an order that shrinks a position drifted beyond it always passes)."""
    out: dict[int, Refusal] = {}
    notional = np.abs(qty * prices)
    weight = np.abs((shares + qty) * prices) / max(equity_after, 1e-300)
    for i in np.flatnonzero(qty):
        s = symbols[i]
        if params.max_order_notional is not None and notional[i] > params.max_order_notional:
            out[int(i)] = Refusal("max_order_notional", s, f"order for {s} of {notional[i]:,.2f} exceeds "
                                  f"trading.max_order_notional {params.max_order_notional:,.2f}")
        elif weight[i] > params.max_position_weight + 1e-12 and abs(shares[i] + qty[i]) > abs(shares[i]):
            out[int(i)] = Refusal("max_position_weight", s, f"order for {s} would make it {weight[i]:.1%} of equity, "
                                  f"beyond trading.max_position_weight {params.max_position_weight:.0%}")
    return out
