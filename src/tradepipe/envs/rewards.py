"""Step rewards for the trading environments.

Each reward sees the bar's net simple return (after costs) and the equity after it, and keeps its own
state (if any) per book. State has the shape given at construction: ``()`` for one environment,
``(n,)`` for a batch of ``n``; the same numpy arithmetic serves both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from tradepipe.core.types import Bools

Value = Any  # a float (one book) or a float64 array (a batch of books)
_VARIANCE_FLOOR = 1e-200


class Reward(ABC):
    """A per-step reward with optional per-book state."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.shape = shape
        self.reset()

    @abstractmethod
    def reset(self, mask: Bools | None = None) -> None:
        """Forget the state of every book, or of the books where ``mask`` is True."""

    @abstractmethod
    def __call__(self, net_return: Value, equity: Value) -> Value:
        """Reward for a bar with net simple return ``net_return`` ending at ``equity``."""


def _fresh(state: Value, value: float, shape: tuple[int, ...], mask: Bools | None) -> Value:
    """``state`` set to ``value`` everywhere (``mask`` None) or where ``mask`` is True."""
    return np.full(shape, value) if mask is None else np.where(mask, value, state)


class LogReturn(Reward):
    """Log growth of equity over the bar, net of costs: ``log(1 + net_return)``."""

    def reset(self, mask: Bools | None = None) -> None:
        """Nothing to forget: this reward has no state."""

    def __call__(self, net_return: Value, equity: Value) -> Value:
        return np.log1p(net_return)


class DifferentialSharpe(Reward):
    """Moody & Saffell's differential Sharpe ratio of the net returns, with adaptation rate ``eta``.

    ``A`` and ``B`` are exponential moving estimates of the first and second moments of returns,
    starting at 0. With ``dA = R - A`` and ``dB = R**2 - B`` (before the update),
    ``D = (B * dA - A * dB / 2) / (B - A**2) ** 1.5`` (0 while ``B - A**2`` is 0), then
    ``A += eta * dA`` and ``B += eta * dB``. Early values are large (few returns behind the moments).
    """

    def __init__(self, shape: tuple[int, ...] = (), eta: float = 0.01) -> None:
        if not 0.0 < eta <= 1.0:
            raise ValueError(f"eta must be in (0, 1], got {eta}")
        self.eta = eta
        self.a: Value = 0.0
        self.b: Value = 0.0
        super().__init__(shape)

    def reset(self, mask: Bools | None = None) -> None:
        self.a = _fresh(self.a, 0.0, self.shape, mask)
        self.b = _fresh(self.b, 0.0, self.shape, mask)

    def __call__(self, net_return: Value, equity: Value) -> Value:
        d_a = net_return - self.a
        d_b = net_return * net_return - self.b
        variance = self.b - self.a * self.a
        numerator = self.b * d_a - 0.5 * self.a * d_b
        # Variance is 0 only while every return so far was 0, and then so is the numerator: the floor
        # (well above where variance ** 1.5 underflows) turns that 0 / 0 into 0.
        value = numerator / np.maximum(variance, _VARIANCE_FLOOR) ** 1.5
        self.a = self.a + self.eta * d_a
        self.b = self.b + self.eta * d_b
        return value


class DrawdownPenalty(Reward):
    """Log growth minus ``penalty`` times the increase (if any) of the drawdown from the equity peak."""

    def __init__(self, shape: tuple[int, ...] = (), penalty: float = 1.0) -> None:
        if penalty < 0.0:
            raise ValueError(f"penalty must be >= 0, got {penalty}")
        self.penalty = penalty
        self.peak: Value = 1.0
        self.drawdown: Value = 0.0
        super().__init__(shape)

    def reset(self, mask: Bools | None = None) -> None:
        self.peak = _fresh(self.peak, 1.0, self.shape, mask)
        self.drawdown = _fresh(self.drawdown, 0.0, self.shape, mask)

    def __call__(self, net_return: Value, equity: Value) -> Value:
        self.peak = np.maximum(self.peak, equity)
        drawdown = 1.0 - equity / self.peak
        increase = np.maximum(drawdown - self.drawdown, 0.0)
        self.drawdown = drawdown
        return np.log1p(net_return) - self.penalty * increase


REWARDS: dict[str, type[Reward]] = {
    "log_return": LogReturn,
    "differential_sharpe": DifferentialSharpe,
    "drawdown_penalty": DrawdownPenalty,
}


def make_reward(name: str, shape: tuple[int, ...] = (), params: Mapping[str, float] | None = None) -> Reward:
    """Build the reward called ``name`` (a key of ``REWARDS``) with ``params`` for books of ``shape``."""
    if name not in REWARDS:
        raise ValueError(f"reward {name!r} is unknown; choose one of {sorted(REWARDS)}")
    return REWARDS[name](shape, **(params or {}))
