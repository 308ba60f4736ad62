"""Multi-asset portfolio environment (N assets plus cash) stepping ``core.execution.rebalance`` bar by bar.

At time ``t`` the agent sees the observation built from data up to close ``t`` and chooses target weights;
``step`` fills them at close ``t + 1`` paying ``cost_rate`` per unit of turnover (measured against the
weights drifted over ``(t, t + 1]``) and moves to ``t + 1``. Cash earns nothing.

Observation (float32), in this order:
  ``features[t - lookback + 1 .. t]`` flattened time-major (``lookback * N * F`` values),
  ``predictions[t]`` (``N`` values, only when predictions are given),
  the book held after the last fill: N asset weights and the cash weight ``1 - sum(weights)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import gymnasium
import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from tradepipe.core.execution import rebalance
from tradepipe.core.types import F32 as Obs
from tradepipe.core.types import Array
from tradepipe.envs.rewards import make_reward

__all__ = ["LOGIT_SCALE", "Obs", "PortfolioEnv", "PortfolioVecEnv", "action_to_book", "action_to_weights",
           "observation"]

LOGIT_SCALE = 5.0  # long-only softmax temperature: actions in [-1, 1] reach weights from ~0 to ~1
# Hot-path constants as 0-d arrays (numpy ufuncs take them faster than Python floats). Batches keep
# assets on the last axis; transposing puts them first, so np.add.reduce(x.T) sums over assets and
# per-book scalars broadcast against x.T.
_ONE, _MINUS_ONE, _SCALE = np.array(1.0), np.array(-1.0), np.array(LOGIT_SCALE)


def observation(features: npt.ArrayLike, predictions: npt.ArrayLike | None, t: int, lookback: int,
                book: Array) -> Obs:
    """The observation at bar ``t`` holding ``book`` (N + 1), as ``PortfolioEnv(..., features, predictions=...,
    lookback=...).observe(t, book)`` forms it, without building the env (a live decision's one observation)."""
    window = np.nan_to_num(np.asarray(features[t - lookback + 1:t + 1], dtype=np.float32)).reshape(-1)  # type: ignore[index]
    if predictions is None:
        return np.concatenate((window, book), dtype=np.float32)
    newest = np.nan_to_num(np.asarray(predictions[t], dtype=np.float32))  # type: ignore[index]
    return np.concatenate((window, newest, book), dtype=np.float32)


@lru_cache(maxsize=64)
def _ones(n: int) -> Array:
    """A read-only vector of ``n`` ones: ``np.dot(x, _ones(len(x)))`` sums a short vector fast."""
    ones = np.ones(n)
    ones.setflags(write=False)
    return ones


def action_to_book(action: npt.ArrayLike, long_only: bool = True, max_leverage: float = 1.0) -> Array:
    """Map actions (last axis: N assets then cash) to a target book: N asset weights, then cash.

    Deterministic and pure; a batch (..., N + 1) maps to (..., N + 1), and every book sums to 1.
    Actions are clipped to [-1, 1].
    Long-only: assets ``max_leverage * softmax(LOGIT_SCALE * action)[:N]``, weights >= 0 summing to at
    most ``max_leverage`` (with 1.0, the book lies on the simplex).
    Long-short: assets ``max_leverage * a / max(1, sum|a|)`` over the N asset entries (the cash entry of
    the action is unused), so gross exposure ``sum|w| <= max_leverage`` and every such book is reachable.
    Cash is ``1 - sum(assets)`` (negative when borrowing).
    """
    clipped = np.maximum(action, _MINUS_ONE)  # a new float64 array (the constants are float64): safe to modify
    np.minimum(clipped, _ONE, out=clipped)
    if long_only and clipped.ndim == 1:  # one book (the single env's hot path): no transposes
        e = np.exp(np.multiply(clipped, _SCALE))
        e *= max_leverage / np.dot(e, _ones(len(e)))
        if max_leverage != 1.0:
            e[-1] += 1.0 - max_leverage
        return e
    a = clipped.T
    if long_only:
        e = np.exp(a * _SCALE)
        book = e * (max_leverage / np.add.reduce(e))
        if max_leverage != 1.0:
            book[-1] += 1.0 - max_leverage
        return book.T
    book = np.empty_like(a)
    x = a[:-1]
    book[:-1] = x * (max_leverage / np.maximum(np.add.reduce(np.abs(x)), _ONE))
    book[-1] = 1.0 - np.add.reduce(book[:-1])
    return book.T


def action_to_weights(action: npt.ArrayLike, long_only: bool = True, max_leverage: float = 1.0) -> Array:
    """The N target asset weights of ``action_to_book`` (without the cash entry), (..., N)."""
    return action_to_book(action, long_only, max_leverage)[..., :-1]


class PortfolioEnv(gymnasium.Env[Obs, Obs]):
    """N assets plus cash; target weights decided at close t are filled at close t + 1 (see module doc)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, returns: npt.ArrayLike, features: npt.ArrayLike, *, cost_rate: float = 0.0015,
                 reward: str = "log_return", lookback: int = 1, long_only: bool = True,
                 max_leverage: float = 1.0, episode_length: int | None = None,
                 predictions: npt.ArrayLike | None = None,
                 reward_params: Mapping[str, float] | None = None) -> None:
        rets = np.nan_to_num(np.asarray(returns, dtype=np.float64))
        feats = np.nan_to_num(np.asarray(features, dtype=np.float32))
        if rets.ndim != 2 or feats.ndim != 3 or feats.shape[:2] != rets.shape:
            raise ValueError(f"need returns (T, N) and features (T, N, F); got {rets.shape}, {feats.shape}")
        n_bars, n_assets = rets.shape
        if not 1 <= lookback < n_bars:
            raise ValueError(f"lookback must be in [1, {n_bars - 1}], got {lookback}")
        if episode_length is not None and not 1 <= episode_length <= n_bars - lookback:
            raise ValueError(f"episode_length must be in [1, {n_bars - lookback}], got {episode_length}")
        if cost_rate < 0.0 or max_leverage <= 0.0:
            raise ValueError(f"need cost_rate >= 0 and max_leverage > 0; got {cost_rate}, {max_leverage}")
        self.n_assets, self.n_bars, self.lookback = n_assets, n_bars, lookback
        self.cost_rate, self.long_only, self.max_leverage = cost_rate, long_only, max_leverage
        self.episode_length, self.reward_name = episode_length, reward
        self.reward_params = dict(reward_params or {})
        self.returns = rets
        row = n_assets * feats.shape[2]
        # windows[i]: features[i .. i + lookback - 1] flattened, a view into one contiguous buffer.
        self._windows = np.lib.stride_tricks.sliding_window_view(feats.reshape(-1), lookback * row)[::row]
        self._predictions: Obs | None = None
        if predictions is not None:
            self._predictions = np.nan_to_num(np.asarray(predictions, dtype=np.float32))
            if self._predictions.shape != rets.shape:
                raise ValueError(f"predictions must be {rets.shape}, got {self._predictions.shape}")
        self.obs_size = lookback * row + (n_assets if predictions is not None else 0) + n_assets + 1
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.obs_size,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (n_assets + 1,), np.float32)
        self._reward = make_reward(reward, (), self.reward_params)
        self.all_cash: Array = np.zeros(n_assets + 1)
        self.all_cash[-1] = 1.0
        self.all_cash.setflags(write=False)
        self._t = self._end = lookback - 1
        self._book = self.all_cash
        self._held = self.all_cash[:-1]  # the asset weights of ``_book``
        self._equity = 1.0

    def action_book(self, action: npt.ArrayLike) -> Array:
        """Target book (N asset weights, then cash) for ``action``, one or a batch: ``action_to_book``."""
        return action_to_book(action, self.long_only, self.max_leverage)

    def action_weights(self, action: npt.ArrayLike) -> Array:
        """Target asset weights for ``action``, one or a batch: ``action_book`` without cash."""
        return self.action_book(action)[..., :-1]

    def episode_start(self, rng: np.random.Generator, size: int | None = None) -> Any:
        """First time index of new episodes: ``lookback - 1``, or uniform when ``episode_length`` is set."""
        if self.episode_length is None:
            return self.lookback - 1 if size is None else np.full(size, self.lookback - 1)
        return rng.integers(self.lookback - 1, self.n_bars - self.episode_length, size=size)

    def episode_end(self, start: Any) -> Any:
        """Last time index of episodes starting at ``start``."""
        return self.n_bars - 1 if self.episode_length is None else start + self.episode_length

    def observe(self, t: Any, book: Array) -> Obs:
        """Observation(s) at time(s) ``t`` for the ``book`` held, (N + 1,) or a batch (B, N + 1); a new array."""
        if book.ndim == 1:  # one book (the single env's hot path)
            window = self._windows[t - self.lookback + 1]
            parts = (window, book) if self._predictions is None else (window, self._predictions[t], book)
            return np.concatenate(parts, dtype=np.float32)
        obs = np.empty((*book.shape[:-1], self.obs_size), dtype=np.float32)
        width = self._windows.shape[1]
        obs[..., :width] = self._windows[t - self.lookback + 1]
        if self._predictions is not None:
            obs[..., width:width + self.n_assets] = self._predictions[t]
        obs[..., -1 - self.n_assets:] = book
        return obs

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = int(self.episode_start(self.np_random))
        self._end = int(self.episode_end(self._t))
        self._book = self.all_cash
        self._held = self.all_cash[:-1]
        self._equity = 1.0
        self._reward.reset()
        return self.observe(self._t, self._book), {"equity": 1.0, "t": self._t}

    def step(self, action: Obs) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        book = self.action_book(action)
        target, t = book[:-1], self._t + 1
        net, turnover, cost = rebalance(self._held, self.returns[t], target, self.cost_rate)
        self._equity = equity = self._equity * (1.0 + net)
        self._book, self._held, self._t = book, target, t
        info = {"equity": equity, "turnover": turnover, "cost": cost, "weights": target, "t": t}
        return self.observe(t, book), float(self._reward(net, equity)), equity <= 0.0, t == self._end, info


class PortfolioVecEnv(VecEnv):
    """``n_envs`` independent books on the data and configuration of ``env``, stepped together in numpy.

    Stable-Baselines3 ``VecEnv`` semantics: finished episodes are reset automatically, their last
    observation is in ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` tells a cut
    (end of data or window) from a bankruptcy. Attributes and methods are those of the shared ``env``.
    """

    def __init__(self, env: PortfolioEnv, n_envs: int, seed: int | None = None) -> None:
        self.env = env
        super().__init__(n_envs, env.observation_space, env.action_space)
        self._rng = np.random.default_rng(seed)
        self._reward = make_reward(env.reward_name, (n_envs,), env.reward_params)
        self._t = np.zeros(n_envs, dtype=np.int64)
        self._end = np.zeros(n_envs, dtype=np.int64)
        self._book: Array = np.tile(env.all_cash, (n_envs, 1))
        self._equity: Array = np.ones(n_envs)
        self._actions: Obs = np.zeros((n_envs, *(env.action_space.shape or ())), dtype=np.float32)

    def reset(self) -> Obs:
        if self._seeds[0] is not None:
            self._rng = np.random.default_rng(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        self._restart(np.ones(self.num_envs, dtype=bool))
        return self.env.observe(self._t, self._book)

    def _restart(self, mask: npt.NDArray[np.bool_]) -> None:
        """Start new episodes for the books where ``mask`` is True."""
        start = self.env.episode_start(self._rng, int(mask.sum()))
        self._t[mask] = start
        self._end[mask] = self.env.episode_end(start)
        self._book = np.where(mask[:, None], self.env.all_cash, self._book)  # new: infos hold row views
        self._equity[mask] = 1.0
        self._reward.reset(mask)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        book = self.env.action_book(self._actions)
        target = book[:, :-1]
        t = self._t + 1
        net, turnover, cost = rebalance(self._book[:, :-1], self.env.returns[t], target, self.env.cost_rate)
        self._equity = equity = self._equity * (1.0 + net)
        self._book, self._t = book, t
        rewards = self._reward(net, equity).astype(np.float32)
        obs = self.env.observe(t, book)
        bankrupt = equity <= 0.0
        dones = bankrupt | (t == self._end)
        infos: list[dict[str, Any]] = [
            {"equity": equity[i], "turnover": turnover[i], "cost": cost[i], "weights": target[i], "t": t[i]}
            for i in range(self.num_envs)]
        if dones.any():
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = not bankrupt[i]
            self._restart(dones)
            obs[dones] = self.env.observe(self._t[dones], self._book[dones])
        return obs, rewards, dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.env, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the shared env: it applies to every book, whatever ``indices`` says."""
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        method = getattr(self.env, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper],
                       indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
