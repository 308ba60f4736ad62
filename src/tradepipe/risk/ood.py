"""Out-of-distribution guard: how far the market part of an observation lies from the policy's training window.

The market part of the observation at bar t is every asset's scaled features and forecast at t (the book held
is the account's own state, not data). Each of those columns has a mean and standard deviation over the bars
the policy was fitted on (stored with the policy); the score of bar t is the root mean square of the columns'
z-scores, about 1 on bars like the training window's. A large score says the policy is asked about a market it
never saw (a crash, a data error that passed the bar checks, a symbol whose features went flat).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tradepipe.core.market import Market
from tradepipe.core.types import Array

__all__ = ["OodReference", "Outlier"]

# a column that barely moved in training (std below this) is measured in units of this floor instead
STD_FLOOR = 1e-3


@dataclass(frozen=True)
class Outlier:
    """A bar's score and its most extreme column (index into assets x features, then forecasts)."""

    score: float
    column: int
    z: float


@dataclass(frozen=True)
class OodReference:
    """Per-column mean and standard deviation of the observations' market part over a training window."""

    mean: Array
    std: Array

    @staticmethod
    def rows(market: Market, bars: slice | int) -> Array:
        """The market part of the observation at ``bars``: (assets x features, then forecasts) per bar."""
        features = np.asarray(market.features[bars], dtype=np.float64)
        forecasts = np.asarray(market.predictions[bars], dtype=np.float64)
        return np.concatenate([features.reshape(*features.shape[:-2], -1), forecasts], axis=-1)

    @classmethod
    def fit(cls, market: Market) -> OodReference:
        """The reference of the bars of ``market`` (the policy's training window)."""
        if len(market.timestamps) < 2:
            raise ValueError(f"an OOD reference needs at least 2 bars, got {len(market.timestamps)}")
        rows = cls.rows(market, slice(None))
        return cls(rows.mean(axis=0), np.maximum(rows.std(axis=0), STD_FLOOR))

    def z(self, market: Market, bars: slice | int) -> Array:
        """Columns' z-scores at ``bars`` against the training window."""
        rows = self.rows(market, bars)
        if rows.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"the observation has {rows.shape[-1]} market columns, the reference "
                             f"{self.mean.shape[0]}: the market was not built with the policy's recipe")
        return (rows - self.mean) / self.std

    @staticmethod
    def score(z: Array) -> Array:
        """The root mean square of z-scores over the columns (the last axis)."""
        return np.sqrt(np.mean(np.square(z), axis=-1))

    def scores(self, market: Market) -> Array:
        """The score of every bar of ``market``."""
        return self.score(self.z(market, slice(None)))

    def outlier(self, market: Market, t: int) -> Outlier:
        """Bar ``t``'s score and its most extreme column."""
        z = self.z(market, t)
        column = int(np.argmax(np.abs(z)))
        return Outlier(float(self.score(z)), column, float(z[column]))

    def to_json(self) -> dict[str, Any]:
        """The reference as JSON (written beside the policy, so the signed artifacts cover it)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OodReference:
        """The reference written by :meth:`to_json`."""
        mean, std = np.asarray(data["mean"], dtype=np.float64), np.asarray(data["std"], dtype=np.float64)
        if mean.shape != std.shape or mean.ndim != 1 or not np.all(std > 0):
            raise ValueError("an OOD reference needs equal-length mean and std vectors with std > 0")
        return cls(mean, std)
