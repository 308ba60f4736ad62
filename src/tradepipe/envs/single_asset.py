"""Single-asset trading: the action is a target position, the accounting is ``PortfolioEnv``'s with N = 1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from tradepipe.core.execution import rebalance_scalar
from tradepipe.core.types import Array
from tradepipe.envs.portfolio import Obs, PortfolioEnv


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
        # the step's hot path in plain floats: the asset's returns and the action bounds
        self._rets: list[float] = self.returns[:, 0].tolist()
        self._bounds = (0.0 if long_only else -1.0, 1.0)
        self._weight = 0.0  # the asset weight held (the book's first entry)
        # each bar's observation but the book (its last two entries), filled once: a step copies its row
        self._rows = np.zeros((self.n_bars, self.obs_size), dtype=np.float32)
        for t in range(self.lookback - 1, self.n_bars):
            self._rows[t] = self.observe(t, np.zeros(2))

    def action_book(self, action: npt.ArrayLike) -> Array:
        """Book (asset weight, cash) for ``action``: the position clipped to the action space, levered."""
        position = np.minimum(np.maximum(np.asarray(action, dtype=np.float64), self._low), self._high)
        return position * self._exposure + self.all_cash  # (weight, 1 - weight)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        self._weight = 0.0
        return super().reset(seed=seed, options=options)

    def step(self, action: Obs) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        """``PortfolioEnv.step`` for one asset in plain floats (``core.execution.rebalance_scalar``): the same
        operations in the same order, so the same observations, rewards and infos to the last bit."""
        low, high = self._bounds
        weight = min(max(float(action[0]), low), high) * self.max_leverage
        t = self._t + 1
        net, turnover, cost = rebalance_scalar(self._weight, self._rets[t], weight, self.cost_rate)
        self._equity = equity = self._equity * (1.0 + net)
        book = np.array((weight, 1.0 - weight))
        target = book[:1]
        self._book, self._held, self._t, self._weight = book, target, t, weight
        info = {"equity": equity, "turnover": turnover, "cost": cost, "weights": target, "t": t}
        obs = self._rows[t].copy()
        obs[-2:] = book                                          # rounded to float32 as observe rounds it
        return obs, float(self._reward(net, equity)), equity <= 0.0, t == self._end, info
