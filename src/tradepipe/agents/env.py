"""Environments whose fills pass through the risk manager: the policy proposes, the risk manager disposes.

``BookEnv`` is a ``PortfolioEnv`` that executes target books as given (the accounting is PortfolioEnv's,
i.e. ``core.execution.execute``'s); ``policy_book`` maps a policy's raw action to its proposed book.
``ManagedVecEnv`` steps a batch of books for training: agent actions → proposed books → ``RiskManager``
→ fills. Rollouts (backtest, serving) use the same ``RiskManager.apply`` one book at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tradepipe.core.types import Array
from tradepipe.envs.portfolio import Obs, PortfolioEnv, PortfolioVecEnv, action_to_book
from tradepipe.risk import RiskManager


class BookEnv(PortfolioEnv):
    """A PortfolioEnv whose actions are target books (N asset weights, then cash), executed unchanged."""

    def action_book(self, action: npt.ArrayLike) -> Array:
        """The book itself: the risk manager, not the env, decides what is traded."""
        return np.asarray(action, dtype=np.float64)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        """A new episode, all cash; ``options={"start": t}`` starts it at bar t (a rollout from a given bar)."""
        obs, info = super().reset(seed=seed, options=options)
        if options and "start" in options:
            start = int(options["start"])
            if not self.lookback - 1 <= start < self.n_bars:
                raise ValueError(f"start must be in [{self.lookback - 1}, {self.n_bars - 1}], got {start}")
            self._t, self._end = start, int(self.episode_end(start))
            obs, info = self.observe(start, self._book), {"equity": 1.0, "t": start}
        return obs, info

    def policy_book(self, action: npt.ArrayLike) -> Array:
        """The book a policy proposes with raw ``action`` (one or a batch): ``action_to_book``."""
        return action_to_book(action, self.long_only, self.max_leverage)


class ManagedVecEnv(PortfolioVecEnv):
    """``n_envs`` books on ``env``'s data; agent actions become proposed books, then risk-managed fills."""

    env: BookEnv

    def __init__(self, env: BookEnv, risk: RiskManager, n_envs: int = 1, seed: int | None = None) -> None:
        super().__init__(env, n_envs, seed)
        self.risk = risk
        self.risk_state = risk.start(n_envs)

    def step_async(self, actions: np.ndarray) -> None:
        books = self.risk.apply(self.risk_state, self.env.policy_book(actions), self._t, self._equity)
        super().step_async(books)

    def _restart(self, mask: npt.NDArray[np.bool_]) -> None:
        super()._restart(mask)
        self.risk_state.reset(mask)
