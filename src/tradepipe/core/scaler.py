"""Per-feature standardization fitted on the training window only, clipped to ±CLIP deviations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tradepipe.core.types import F32

__all__ = ["CLIP", "Scaler"]

CLIP = 5.0


@dataclass(frozen=True)
class Scaler:
    """Per-feature standardization fitted on the training window only."""

    mean: F32
    std: F32

    @classmethod
    def fit(cls, features: F32, stop: int) -> Scaler:
        """Fit on time positions [0, stop) of an (N, T, F) array."""
        train = features[:, :stop].reshape(-1, features.shape[-1])
        mean = np.nanmean(train, axis=0).astype(np.float32)
        std = np.nanstd(train, axis=0).astype(np.float32)
        return cls(mean, np.where(std > 0, std, 1.0).astype(np.float32))

    def transform(self, features: F32) -> F32:
        """Standardize and clip to ±5 standard deviations (NaN stays NaN)."""
        return np.clip((features - self.mean) / self.std, -CLIP, CLIP).astype(np.float32)
