"""The one execution accounting: targets decided at the close of bar t are filled at the close of bar t+1.

Conventions (shared by the backtest, which executes whole schedules, and the RL environments, which step
one bar at a time through the same ``rebalance``):
- ``returns[t, i]`` is asset i's simple return from close t-1 to close t (``returns[0]`` is ignored).
- ``targets[t]`` are the weights (assets, the rest in cash) decided with information up to close t.
- They are filled at close t+1, paying ``cost_rate`` per unit of turnover, and then held (drifting with
  prices) over (t+1, t+2]. Cash earns nothing. Before the first fill the book is all cash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tradepipe.core.types import Array

__all__ = ["Execution", "execute", "rebalance"]


@dataclass(frozen=True)
class Execution:
    """Per-bar results of executing a target-weight schedule."""

    net_returns: Array   # (T,) portfolio return over (t-1, t], after the costs paid at close t
    turnover: Array      # (T,) sum of absolute weight changes traded at close t
    costs: Array         # (T,) cost paid at close t, as a fraction of equity
    weights: Array       # (T, N) asset weights held after trading at close t

    @property
    def equity(self) -> Array:
        """Equity curve starting from 1.0 before bar 0."""
        return np.asarray(np.cumprod(1.0 + self.net_returns), dtype=np.float64)


def rebalance(held: Array, returns: Array, target: Array, cost_rate: float) -> tuple[Any, Any, Any]:
    """One bar: hold ``held`` over the bar's ``returns``, then trade to ``target`` at its close.

    Works on one book (N,), giving Python floats, or on books stacked on a leading axis (B, N) — a batch
    of environments or every bar of a schedule — giving arrays (B,); row by row the arithmetic is the same.
    Returns ``(net_return, turnover, cost)``: net simple return of equity after costs, the sum of
    absolute weight changes against the drifted weights, and the cost as a fraction of equity.
    """
    if held.ndim == 1:  # one book, the single env's hot path: the same operations, in place, as Python floats
        growth = float(np.add.reduce(held * returns)) + 1.0      # gross growth of equity over the bar
        drifted = np.add(returns, 1.0)
        drifted *= held
        drifted /= growth                                        # weights just before trading
        np.subtract(target, drifted, out=drifted)
        turnover = float(np.add.reduce(np.abs(drifted, out=drifted)))
        cost = turnover * cost_rate
        return growth * (1.0 - cost) - 1.0, turnover, cost
    growth_b = 1.0 + (held * returns).sum(axis=-1)
    drifted_b = held * (1.0 + returns) / growth_b[..., None]
    turnover_b = np.abs(target - drifted_b).sum(axis=-1)
    cost_b = turnover_b * cost_rate
    return growth_b * (1.0 - cost_b) - 1.0, turnover_b, cost_b


def execute(targets: Array, returns: Array, cost_rate: float) -> Execution:
    """Execute ``targets`` (T, N) against ``returns`` (T, N) with a one-bar fill lag and proportional costs."""
    targets = np.asarray(targets, dtype=np.float64)
    returns = np.nan_to_num(np.asarray(returns, dtype=np.float64))
    if targets.shape != returns.shape:
        raise ValueError(f"targets {targets.shape} and returns {returns.shape} must have the same shape")
    # held[t]: weights held over (t-1, t] = target decided at t-2, filled at close t-1.
    held = np.zeros_like(targets)
    held[2:] = targets[:-2]
    new = np.zeros_like(targets)                            # weights right after trading at close t
    new[1:] = targets[:-1]
    net, turnover, costs = rebalance(held, returns, new, cost_rate)
    return Execution(net_returns=net, turnover=turnover, costs=costs, weights=new)
