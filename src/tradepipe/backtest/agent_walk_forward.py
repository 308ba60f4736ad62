"""The agent ensemble walked forward: refitted on each window's past (as rl_train fits it), traded on its slice.

The windows test from the day after ``split.val_end`` to the end of the data; each fit holds out the tail of
its training span to select or blend the agents. Each of ``rl_train.seeds`` seeds (``seed``, ``seed + 1``, ...)
is walked forward on its own; the live window's fit (on the latest history) of the first seed is the policy to
deploy, the one the first seed's walk-forward figures speak for and the other seeds' show the spread of.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradepipe.agents.policy import PolicySpec, TradingPolicy
from tradepipe.agents.training import fit_ensemble, split_tail
from tradepipe.backtest.walk_forward import Window, live_window, walk_forward_targets, walk_forward_windows
from tradepipe.config import Params, RLParams
from tradepipe.core.market import Market
from tradepipe.core.progress import progress
from tradepipe.models.predictor import Predictor

OnFit = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class AgentWalkForward:
    """Stitched out-of-sample targets (zero before the first test slice) per seed (the first seed first), the
    windows, the live policy, and one record per fit (seed, window number, span, ensemble reason and blend; the
    live fit last)."""

    seed_targets: dict[int, np.ndarray]
    windows: list[Window]
    live_policy: TradingPolicy
    fits: list[dict[str, object]]

    @property
    def targets(self) -> np.ndarray:
        """The first seed's targets: the walk-forward of the policy deployed."""
        return next(iter(self.seed_targets.values()))


def backtest_windows(timestamps: pd.DatetimeIndex, params: Params) -> list[Window]:
    """The walk-forward windows of ``params.backtest.walk_forward`` testing from the day after split.val_end;
    ValueError (naming the params section) when they cannot be laid out."""
    try:
        return walk_forward_windows(timestamps, pd.Timestamp(params.split.val_end, tz="UTC") + pd.Timedelta(days=1),
                                    params.backtest.walk_forward,
                                    purge=params.features.label_horizon + params.split.embargo,
                                    history_start=pd.Timestamp(params.split.train_end, tz="UTC"))
    except ValueError as exc:
        raise ValueError(f"params.yaml backtest.walk_forward: {exc}") from exc


def agent_walk_forward(market: Market, spec: PolicySpec, predictor: Predictor, params: Params, rl: RLParams,
                       live_market: Market, live_predictor: Predictor, on_fit: OnFit | None = None) -> AgentWalkForward:
    """The agent ensemble (hyperparameters ``rl``) walked forward over ``market`` once per seed of ``rl.seeds``,
    then the first seed's fitted on the live window of ``live_market`` bundling ``live_predictor`` (the one
    ``live_market``'s observations are scaled by).

    ``on_fit(k, metrics)`` receives each fit's figures (k = 0, 1, ..., the live fit last) as it completes.
    ValueError when the windows cannot be laid out or a window's span is too short to train and validate.
    """
    cfg = params.backtest.walk_forward
    windows = backtest_windows(market.timestamps, params)
    seeds = [params.seed + s for s in range(rl.seeds)]
    fits: list[dict[str, object]] = []

    def fitter(seed: int, bundled: Predictor = predictor) -> Callable[[Market, Window], TradingPolicy]:
        def fit(train: Market, window: Window) -> TradingPolicy:
            k = len(fits)
            span = window.describe(market.timestamps)
            try:
                head, val = split_tail(train, rl.validation_fraction, rl.lookback)
            except ValueError as exc:
                raise ValueError(f"walk-forward window {span}: {exc}; lengthen "
                                 "backtest.walk_forward.train_years in params.yaml") from exc
            fitted = fit_ensemble(head, val, spec, bundled, rl, seed, label=f"fit {k + 1}/{total} seed {seed} ")
            if on_fit is not None:
                on_fit(k, fitted.metrics)
            fits.append({"seed": seed, "window": k + 1, "span": span, "reason": fitted.reason,
                         "blend": fitted.policy.blend})
            tracker.advance(note=f"seed {seed} {span}: {fitted.reason}")
            return fitted.policy
        return fit

    total = len(windows) * len(seeds) + 1
    with progress("backtest walk-forward fits", total) as tracker:  # the live fit last
        targets = {seed: walk_forward_targets(market, windows, fitter(seed), cfg.warmup_bars) for seed in seeds}
        live = live_window(market.timestamps, cfg, pd.Timestamp(params.split.train_end, tz="UTC"))
        live_policy = fitter(seeds[0], live_predictor)(live_market.take(live.train), live)
    return AgentWalkForward(targets, windows, live_policy, fits)
