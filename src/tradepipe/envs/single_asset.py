"""Single-asset trading: the action is a target position, the accounting is ``PortfolioEnv``'s with N = 1."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from tradepipe.core.types import Array
from tradepipe.envs.portfolio import PortfolioEnv


class SingleAssetTradingEnv(PortfolioEnv):
    """One asset plus cash; the action is the target position in [-1, 1] ([0, 1] when ``long_only``).

    ``returns`` is (T,) or (T, 1), ``features`` (T, F) or (T, 1, F), ``predictions`` (T,) or (T, 1).
    The position times ``max_leverage`` is the asset weight; the observation layout is ``PortfolioEnv``'s.
    """

    def __init__(self, returns: npt.ArrayLike, features: npt.ArrayLike, *, cost_rate: float = 0.0015,
                 reward: str = "log_return", lookback: int = 1, long_only: bool = False,
                 max_leverage: float = 1.0, episode_length: int | None = None,
                 predictions: npt.ArrayLike | None = None,
                 reward_params: Mapping[str, float] | None = None) -> None:
        rets = np.asarray(returns, dtype=np.float64).reshape(-1, 1)
        feats = np.asarray(features, dtype=np.float32)
        preds = None if predictions is None else np.asarray(predictions, dtype=np.float32).reshape(-1, 1)
        super().__init__(rets, feats.reshape(len(rets), 1, -1), cost_rate=cost_rate, reward=reward,
                         lookback=lookback, long_only=long_only, max_leverage=max_leverage,
                         episode_length=episode_length, predictions=preds, reward_params=reward_params)
        self.action_space = spaces.Box(0.0 if long_only else -1.0, 1.0, (1,), np.float32)
        # 0-d bounds: numpy ufuncs take them faster than Python floats
        self._low, self._high = np.array(0.0 if long_only else -1.0), np.array(1.0)
        self._exposure = np.array([max_leverage, -max_leverage])

    def action_book(self, action: npt.ArrayLike) -> Array:
        """Book (asset weight, cash) for ``action``: the position clipped to the action space, levered."""
        position = np.minimum(np.maximum(np.asarray(action, dtype=np.float64), self._low), self._high)
        return position * self._exposure + self.all_cash  # (weight, 1 - weight)
