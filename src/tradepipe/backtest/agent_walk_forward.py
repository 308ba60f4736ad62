"""The agent ensemble walked forward: refitted on each window's past (as rl_train fits it), traded on its slice.

The windows test from the day after ``split.val_end`` to the end of the data; each fit holds out the tail of
its training span to select or blend the agents. Each of ``rl_train.seeds`` seeds (``seed``, ``seed + 1``, ...)
is walked forward on its own as one stitched book (``walk_forward.stitched_book``): the risk manager's state and
the book carry across the window boundaries, each window's fit taking over the book its predecessor left. The
live window's fit (on the latest history) of the first seed is the policy to deploy, the one the first seed's
walk-forward figures speak for and the other seeds' show the spread of.

With ``backtest.no_forecast_ablation`` the first seed's recipe is also walked forward with the predictor's
forecasts taken out of the agents' observation (``PolicySpec.forecast``), on the same windows and bars: does the
predictor help? That ablation is never deployed nor registered and selects nothing, so it is not a ledger trial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from tradepipe.agents.policy import BarActor, PolicySpec, TradingPolicy, bar_blind
from tradepipe.agents.training import EnsembleJob, fit_ensembles, split_tail
from tradepipe.backtest.walk_forward import StitchedBook, Window, live_window, walk_forward_book, walk_forward_windows
from tradepipe.config import Params, RLParams
from tradepipe.core.market import Market
from tradepipe.core.parallel import Pool
from tradepipe.models.predictor import Predictor
from tradepipe.risk import RiskState

OnFit = Callable[[int, dict[str, float]], None]
NO_FORECAST = "no_forecast"  # the ablation's variant name in the fit records and its MLflow metrics' prefix


@dataclass(frozen=True)
class AgentWalkForward:
    """Stitched out-of-sample targets (zero before the first test slice) per seed (the first seed first), the
    no-forecast ablation's (None when off), the windows, the live policy, and one record per fit (variant, seed,
    window number, span, ensemble reason and blend, Ray node id per algorithm; for a test window the risk state its
    book inherited and the annualised turnover of the books its actor proposed and of those the risk manager
    decided on its slice; the live fit last)."""

    seed_targets: dict[int, np.ndarray]
    no_forecast: np.ndarray | None
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


def inherited(state: RiskState) -> dict[str, float]:
    """What a window's book took over from the one before (one book's ``RiskState``), for the fit records."""
    return {"peak_equity": float(state.peak[0]), "breaker_left": float(state.breaker_left[0]),
            "stopped_assets": float((state.stop_left[0] > 0).sum()), "invested": float(state.last[0].sum())}


def weight_turnover(weights: np.ndarray, bars: slice, periods_per_year: int) -> float:
    """Annualised mean of ``sum |w_t - w_(t-1)|`` over ``bars`` of a weight schedule (T, N), the proposed or the
    decided books: what the schedule itself changes, before the fills' drift."""
    lo = max(bars.start - 1, 0)
    return float(np.abs(np.diff(weights[lo:bars.stop], axis=0)).sum(axis=1).mean() * periods_per_year)


def agent_walk_forward(market: Market, spec: PolicySpec, predictor: Predictor, params: Params, rl: RLParams,
                       live_market: Market, live_predictor: Predictor, on_fit: OnFit | None = None) -> AgentWalkForward:
    """The agent ensemble (hyperparameters ``rl``) walked forward over ``market`` once per seed of ``rl.seeds``
    (and, with ``params.backtest.no_forecast_ablation``, once more for the first seed without the forecast), then
    the first seed's fitted on the live window of ``live_market`` bundling ``live_predictor`` (the one
    ``live_market``'s observations are scaled by).

    Every (window, algorithm, seed) agent fit, the ablation's and the live fit's included, is one task on
    ``params.parallel`` (Ray, or one after another with the same results); each fit's record names the Ray node
    each agent was fitted on. ``on_fit(k, metrics)`` receives each fit's figures (k = 0, 1, ..., the live fit last;
    the ablation's prefixed ``no_forecast.``) once they are combined. ValueError when the windows cannot be laid
    out or a window's span is too short to train and validate (before any fit starts).
    """
    cfg = params.backtest.walk_forward
    windows = backtest_windows(market.timestamps, params)
    seeds = [params.seed + s for s in range(rl.seeds)]
    live = live_window(market.timestamps, cfg, pd.Timestamp(params.split.train_end, tz="UTC"))
    ablation = replace(spec, forecast=False)
    plan = [("agent", seed, window, market, predictor, spec) for seed in seeds for window in windows]
    if params.backtest.no_forecast_ablation:
        plan += [(NO_FORECAST, seeds[0], window, market, predictor, ablation) for window in windows]
    plan.append(("agent", seeds[0], live, live_market, live_predictor, spec))  # the live fit last
    jobs = []
    for k, (variant, seed, window, source, bundled, job_spec) in enumerate(plan):
        span = window.describe(market.timestamps)
        try:
            head, val = split_tail(source.take(window.train), rl.validation_fraction, rl.lookback)
        except ValueError as exc:
            raise ValueError(f"walk-forward window {span}: {exc}; lengthen "
                             "backtest.walk_forward.train_years in params.yaml") from exc
        label = f"fit {k + 1}/{len(plan)} seed {seed}{' no forecast' if variant == NO_FORECAST else ''} "
        jobs.append(EnsembleJob(head, val, bundled, seed, label=label, spec=job_spec))
    fitted = fit_ensembles(jobs, spec, rl, Pool(**params.parallel.model_dump()),
                           progress_label="backtest walk-forward agent fits")
    policies = {(variant, seed, window.test.start): job.fitted.policy
                for (variant, seed, window, *_), job in zip(plan, fitted, strict=True)}

    def book(variant: str, seed: int, book_spec: PolicySpec) -> StitchedBook:
        def fitted_for(_train: Market, window: Window) -> BarActor:
            return bar_blind(policies[(variant, seed, window.test.start)].actor())
        return walk_forward_book(market, windows, fitted_for, book_spec, cfg.warmup_bars)

    books = {seed: book("agent", seed, spec) for seed in seeds}
    ablated = book(NO_FORECAST, seeds[0], ablation) if params.backtest.no_forecast_ablation else None
    fits: list[dict[str, object]] = []
    for k, ((variant, seed, window, *_), job) in enumerate(zip(plan, fitted, strict=True)):
        if on_fit is not None:
            prefix = f"{NO_FORECAST}." if variant == NO_FORECAST else ""
            on_fit(k, {f"{prefix}{name}": value for name, value in job.fitted.metrics.items()})
        record: dict[str, object] = {"variant": variant, "seed": seed, "window": k + 1,
                                     "span": window.describe(market.timestamps), "reason": job.fitted.reason,
                                     "blend": job.fitted.policy.blend, "nodes": job.nodes}
        stitched = ablated if variant == NO_FORECAST else books.get(seed) if window in windows else None
        if stitched is not None:  # what the window's book took over, and how much its actor and its book changed
            record["risk_inherited"] = inherited(stitched.handover[windows.index(window)])
            record["turnover"] = {name: weight_turnover(w, window.test, params.backtest.periods_per_year)
                                  for name, w in (("proposed", stitched.proposed), ("decided", stitched.targets))}
        fits.append(record)
    return AgentWalkForward({seed: b.targets for seed, b in books.items()},
                            None if ablated is None else ablated.targets, windows, fitted[-1].fitted.policy, fits)
