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
from tradepipe.agents.training import EnsembleJob, fit_ensembles, split_tail
from tradepipe.backtest.walk_forward import Window, live_window, walk_forward_targets, walk_forward_windows
from tradepipe.config import Params, RLParams
from tradepipe.core.market import Market
from tradepipe.core.parallel import Pool
from tradepipe.core.progress import progress
from tradepipe.models.predictor import Predictor

OnFit = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class AgentWalkForward:
    """Stitched out-of-sample targets (zero before the first test slice) per seed (the first seed first), the
    windows, the live policy, and one record per fit (seed, window number, span, ensemble reason and blend, Ray
    node id per algorithm; the live fit last)."""

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

    Every (window, algorithm, seed) agent fit, the live fit's included, is one task on ``params.parallel`` (Ray,
    or one after another with the same results); each fit's record names the Ray node each agent was fitted on.
    ``on_fit(k, metrics)`` receives each fit's figures (k = 0, 1, ..., the live fit last) once they are combined.
    ValueError when the windows cannot be laid out or a window's span is too short to train and validate (before
    any fit starts).
    """
    cfg = params.backtest.walk_forward
    windows = backtest_windows(market.timestamps, params)
    seeds = [params.seed + s for s in range(rl.seeds)]
    live = live_window(market.timestamps, cfg, pd.Timestamp(params.split.train_end, tz="UTC"))
    plan = [(seed, window, market, predictor) for seed in seeds for window in windows]
    plan.append((seeds[0], live, live_market, live_predictor))  # the live fit last
    jobs = []
    for k, (seed, window, source, bundled) in enumerate(plan):
        span = window.describe(market.timestamps)
        try:
            head, val = split_tail(source.take(window.train), rl.validation_fraction, rl.lookback)
        except ValueError as exc:
            raise ValueError(f"walk-forward window {span}: {exc}; lengthen "
                             "backtest.walk_forward.train_years in params.yaml") from exc
        jobs.append(EnsembleJob(head, val, bundled, seed, label=f"fit {k + 1}/{len(plan)} seed {seed} "))
    with progress("backtest walk-forward agent fits", len(jobs) * len(dict.fromkeys(rl.algos))) as tracker:
        fitted = fit_ensembles(jobs, spec, rl, Pool(**params.parallel.model_dump()),
                               on_agent=lambda job, done: tracker.advance(
                                   note=f"{job.label}{done.value.algo} on node {done.node[:12]}"))
    fits: list[dict[str, object]] = []
    for k, ((seed, window, _, _), job) in enumerate(zip(plan, fitted, strict=True)):
        if on_fit is not None:
            on_fit(k, job.fitted.metrics)
        fits.append({"seed": seed, "window": k + 1, "span": window.describe(market.timestamps),
                     "reason": job.fitted.reason, "blend": job.fitted.policy.blend, "nodes": job.nodes})
    policies = {(seed, window.test.start): job.fitted.policy for (seed, window, _, _), job in zip(plan, fitted,
                                                                                                  strict=True)}
    def fitted_for(seed: int) -> Callable[[Market, Window], TradingPolicy]:
        return lambda _train, window: policies[(seed, window.test.start)]

    targets = {seed: walk_forward_targets(market, windows, fitted_for(seed), cfg.warmup_bars) for seed in seeds}
    return AgentWalkForward(targets, windows, fitted[-1].fitted.policy, fits)
