"""The agent ensemble walked forward: refitted on each window's past (as rl_train fits it), traded on its slice.

The windows test from the day after ``split.val_end`` to the end of the data; each fit holds out the tail of
its training span to select or blend the agents. The live window's fit (on the latest history) is the policy
to deploy, the one the walk-forward figures speak for.
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
    """Stitched out-of-sample targets (zero before the first test slice), the windows, the live policy, and
    one record per fit (window number, span, ensemble reason and blend; the live fit last)."""

    targets: np.ndarray
    windows: list[Window]
    live_policy: TradingPolicy
    fits: list[dict[str, object]]


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
    """The agent ensemble (hyperparameters ``rl``) walked forward over ``market``, then fitted on the live window
    of ``live_market`` bundling ``live_predictor`` (the one ``live_market``'s observations are scaled by).

    ``on_fit(k, metrics)`` receives each fit's figures (k = 0, 1, ..., the live fit last) as it completes.
    ValueError when the windows cannot be laid out or a window's span is too short to train and validate.
    """
    cfg = params.backtest.walk_forward
    windows = backtest_windows(market.timestamps, params)
    fits: list[dict[str, object]] = []

    def fit(train: Market, window: Window, bundled: Predictor = predictor) -> TradingPolicy:
        k = len(fits)
        span = window.describe(market.timestamps)
        try:
            head, val = split_tail(train, rl.validation_fraction, rl.lookback)
        except ValueError as exc:
            raise ValueError(f"walk-forward window {span}: {exc}; lengthen "
                             "backtest.walk_forward.train_years in params.yaml") from exc
        fitted = fit_ensemble(head, val, spec, bundled, rl, params.seed, label=f"window {k + 1}/{len(windows) + 1} ")
        if on_fit is not None:
            on_fit(k, fitted.metrics)
        fits.append({"window": k + 1, "span": span, "reason": fitted.reason, "blend": fitted.policy.blend})
        tracker.advance(note=f"{span}: {fitted.reason}")
        return fitted.policy

    with progress("backtest walk-forward fits", len(windows) + 1) as tracker:  # the live fit last
        targets = walk_forward_targets(market, windows, fit, cfg.warmup_bars)
        live = live_window(market.timestamps, cfg, pd.Timestamp(params.split.train_end, tz="UTC"))
        live_policy = fit(live_market.take(live.train), live, live_predictor)
    return AgentWalkForward(targets, windows, live_policy, fits)
