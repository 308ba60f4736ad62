"""The one execution accounting: targets decided at the close of bar t are filled at the close of bar t+1.

Conventions (shared by the backtest, which executes whole schedules, and the RL environments, which step
one bar at a time through the same ``rebalance``):
- ``returns[t, i]`` is asset i's simple return from close t-1 to close t (``returns[0]`` is ignored).
- ``targets[t]`` are the weights (assets, the rest in cash) decided with information up to close t.
- They are filled at close t+1 and then held (drifting with prices) over (t+1, t+2]. Before the first fill the
  book is all cash.
- Financing (``Financing``, optional; none by default): over each bar the cash held, ``1 - sum(held)``, earns
  ``cash_rate`` (negative cash, a levered book, pays it) and the short notional ``sum(max(-held, 0))`` pays
  ``borrow_rate``, both simple rates per bar (the annual rates divided by the periods per year). Without it cash
  earns nothing and shorts are financed free, as in the RL environments.
- Costs are ``cost_rate`` times the notional actually traded, paid from the book, so that after paying them
  the book holds exactly the target weights of the equity left: as a fraction ``k`` of the equity before
  trading, ``k = cost_rate * sum_i |target_i * (1 - k) - drifted_i|``, solved exactly (``cost_fraction``).
  A share-and-cash account that sizes its orders this way (``tradepipe.trading``) pays the same dollars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tradepipe.core.types import Array

__all__ = ["Execution", "Financing", "cost_fraction", "execute", "rebalance", "rebalance_scalar"]


@dataclass(frozen=True)
class Financing:
    """Per-bar simple rates: ``cash_rate`` earned on cash (paid on negative cash), ``borrow_rate`` on shorts."""

    cash_rate: float = 0.0
    borrow_rate: float = 0.0

    @classmethod
    def annual(cls, cash_rate: float, borrow_bps: float, periods_per_year: int) -> Financing:
        """From an annual cash rate (fraction) and an annual borrow fee (basis points)."""
        return cls(cash_rate / periods_per_year, borrow_bps / 1e4 / periods_per_year)

    @property
    def active(self) -> bool:
        return self.cash_rate != 0.0 or self.borrow_rate != 0.0

    def carry(self, held: Array) -> Any:
        """The financing return of equity over one bar holding ``held`` (N,) or (B, N): cash interest less the
        short borrow fee."""
        cash = 1.0 - held.sum(axis=-1)
        short = np.maximum(-held, 0.0).sum(axis=-1)
        return self.cash_rate * cash - self.borrow_rate * short


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


def cost_fraction(target: Array, drifted: Array, cost_rate: float) -> Any:
    """The cost ``k`` (fraction of pre-trade equity) solving ``k = cost_rate * sum |target * (1 - k) - drifted|``.

    ``drifted`` are the weights just before trading. The right side is piecewise linear in ``k`` and its
    fixed point is unique (slope below 1 while ``cost_rate * sum |target| < 1``); Newton's method from
    ``k = 0`` lands on it exactly once it is in the right linear piece, usually after one step. Works on one
    book (N,), giving a float, or a stack (B, N), giving (B,).
    """
    k = np.zeros(target.shape[:-1])
    if cost_rate == 0.0:
        return float(k) if target.ndim == 1 else k
    for _ in range(target.shape[-1] + 2):  # each step enters a new linear piece; there are at most N + 1
        gap = target * (1.0 - k)[..., None] - drifted
        residual = k - cost_rate * np.abs(gap).sum(axis=-1)
        step = residual / (1.0 + cost_rate * (np.sign(gap) * target).sum(axis=-1))
        if np.all(np.abs(step) < 1e-18):  # landed: what remains is rounding
            break
        k = k - step
    return float(k) if target.ndim == 1 else k


def rebalance(held: Array, returns: Array, target: Array, cost_rate: float,
              financing: Financing | None = None) -> tuple[Any, Any, Any]:
    """One bar: hold ``held`` over the bar's ``returns`` (and ``financing``'s carry), then trade to ``target``
    at its close.

    Works on one book (N,), giving Python floats, or on books stacked on a leading axis (B, N) — a batch
    of environments or every bar of a schedule — giving arrays (B,); row by row the arithmetic is the same.
    Returns ``(net_return, turnover, cost)``: net simple return of equity after costs, the notional traded
    and the cost, both as fractions of the equity before trading (``cost = cost_rate * turnover``).
    """
    if financing is not None and financing.active:
        if held.ndim == 1:
            net, turnover, cost = rebalance(held[None], returns[None], target[None], cost_rate, financing)
            return float(net[0]), float(turnover[0]), float(cost[0])
    elif held.ndim == 1:
        return _rebalance_one(held, returns, target, cost_rate)
    growth = 1.0 + (held * returns).sum(axis=-1)                # gross growth of equity over the bar
    if financing is not None and financing.active:
        growth = growth + financing.carry(held)
    drifted = held * (1.0 + returns) / growth[..., None]        # weights just before trading
    cost = cost_fraction(target, drifted, cost_rate)
    turnover = np.abs(target * (1.0 - cost)[..., None] - drifted).sum(axis=-1)
    return growth * (1.0 - cost) - 1.0, turnover, cost


def rebalance_scalar(held: float, ret: float, target: float, cost_rate: float) -> tuple[float, float, float]:
    """``rebalance`` of one book of one asset (and cash) in plain floats, the single-asset env's hot path:
    the same operations as ``_rebalance_one`` in the same order, so the same results to the last bit."""
    growth = held * ret + 1.0
    gap = target + (ret + 1.0) * held / -growth                # target - drifted
    traded = abs(gap)
    if cost_rate == 0.0:
        return growth - 1.0, traded, 0.0
    side_target = (1.0 if gap > 0.0 else -1.0 if gap < 0.0 else 0.0) * target
    cost = cost_rate * traded / (1.0 + cost_rate * side_target)
    if traded < side_target * cost:                             # the trade shrank through zero: the general solve
        cost = cost_fraction(np.array([target]), np.array([target - gap]), cost_rate)
    return growth * (1.0 - cost) - 1.0, cost / cost_rate, cost


def _rebalance_one(held: Array, returns: Array, target: Array, cost_rate: float) -> tuple[float, float, float]:
    """``rebalance`` of one book, the envs' hot path: one Newton step, exact unless a trade changes side."""
    if held.shape[0] == 1:
        return rebalance_scalar(float(held[0]), float(returns[0]), float(target[0]), cost_rate)
    growth = float(np.add.reduce(held * returns)) + 1.0
    gap = np.add(returns, 1.0)
    gap *= held
    gap /= -growth
    gap += target                                               # target - drifted
    size = np.abs(gap)
    traded = float(np.add.reduce(size))
    if cost_rate == 0.0:
        return growth - 1.0, traded, 0.0
    side_target = np.sign(gap)
    side_target *= target
    cost = cost_rate * traded / (1.0 + cost_rate * float(np.add.reduce(side_target)))
    side_target *= cost
    if np.less(size, side_target).any():                       # a trade shrank through zero: the general solve
        cost = cost_fraction(target, target - gap, cost_rate)
    return growth * (1.0 - cost) - 1.0, cost / cost_rate, cost


def execute(targets: Array, returns: Array, cost_rate: float, financing: Financing | None = None) -> Execution:
    """Execute ``targets`` (T, N) against ``returns`` (T, N) with a one-bar fill lag, proportional costs and
    ``financing`` (none: cash earns nothing, shorts are free)."""
    targets = np.asarray(targets, dtype=np.float64)
    returns = np.nan_to_num(np.asarray(returns, dtype=np.float64))
    if targets.shape != returns.shape:
        raise ValueError(f"targets {targets.shape} and returns {returns.shape} must have the same shape")
    # held[t]: weights held over (t-1, t] = target decided at t-2, filled at close t-1.
    held = np.zeros_like(targets)
    held[2:] = targets[:-2]
    new = np.zeros_like(targets)                            # weights right after trading at close t
    new[1:] = targets[:-1]
    net, turnover, costs = rebalance(held, returns, new, cost_rate, financing)
    return Execution(net_returns=net, turnover=turnover, costs=costs, weights=new)
