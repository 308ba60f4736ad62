"""Array type aliases shared by every package."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]  # float64 arrays: prices, returns, weights, equity
F32 = npt.NDArray[np.float32]    # float32 arrays: features, forecasts, observations
I64 = npt.NDArray[np.int64]      # index arrays
Bools = npt.NDArray[np.bool_]    # masks

__all__ = ["F32", "I64", "Array", "Bools"]
