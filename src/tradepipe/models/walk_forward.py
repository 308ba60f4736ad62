"""Walk-forward forecasts: each block of bars is predicted by a model fitted only on bars before it.

For a block starting at bar b, the scaler, the target scale and the network are fitted on samples whose
label window ends before b (a purge of the label horizon), so no forecast in the block saw its future. The last
block's refit is kept as a complete predictor: the one behind the most recent forecasts, which a policy fitted
on the latest history must deploy with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tradepipe.config import FeatureParams, TrainParams
from tradepipe.core.parallel import SERIAL, Pool, node_record, run_tasks
from tradepipe.core.progress import progress
from tradepipe.core.scaler import Scaler
from tradepipe.models.panel import Panel, Prepared, Windows
from tradepipe.models.predictor import Predictor
from tradepipe.models.training import fit


def forecast_frame(panel: Panel, windows: Windows, forecasts: np.ndarray) -> pd.DataFrame:
    """``forecasts`` of ``windows`` (in their order) as a (timestamp, symbol, prediction) frame."""
    return pd.DataFrame({"timestamp": panel.timestamps[windows.t], "symbol": np.asarray(panel.symbols)[windows.sym],
                         "prediction": forecasts})


def block_starts(timestamps: pd.DatetimeIndex, start: str, stop: int, refit_years: int) -> list[int]:
    """Bar positions where a refit happens: ``start`` then every ``refit_years`` years, before ``stop``."""
    dates = pd.date_range(pd.Timestamp(start, tz="UTC"), timestamps[stop - 1], freq=pd.DateOffset(years=refit_years))
    return sorted({int(timestamps.searchsorted(d)) for d in dates} - {stop})


def check_covers(timestamps: pd.DatetimeIndex, start: str, after: str) -> None:
    """Raise ValueError unless forecasts from ``start`` cover every bar after the date ``after`` (the RL window
    begins on the first bar after split.train_end)."""
    first = int(timestamps.searchsorted(pd.Timestamp(after, tz="UTC"), side="right"))
    if first < len(timestamps) and timestamps.searchsorted(pd.Timestamp(start, tz="UTC")) > first:
        raise ValueError(f"start={start} is after {timestamps[first].date()}, the first bar after {after}: "
                         "the bars between would have no forecast; set it no later")


@dataclass(frozen=True)
class WalkForward:
    """Out-of-sample forecasts (timestamp, symbol, prediction) and the last block's refit with its scalers."""

    forecasts: pd.DataFrame
    last: Predictor
    refits: list[pd.Timestamp]  # first bar of each block
    tasks: dict[str, Any] = field(default_factory=dict)  # where each refit ran (core.parallel.node_record)


@dataclass(frozen=True)
class Refit:
    """One block's refit: its forecasts, and (for the last block only) the refit as a predictor."""

    forecasts: pd.DataFrame
    predictor: Predictor | None


def refit_block(lo: int, hi: int, last: bool, *, panel: Panel, hp: dict[str, Any], cfg: TrainParams,
                features: FeatureParams, horizon: int, epochs: int, seed: int) -> Refit:
    """Refit on the samples whose label window ends before bar ``lo`` and forecast bars [lo, hi); one task of
    :func:`walk_forward_forecasts` (the ``last`` block also returns its predictor, forecast scale set)."""
    fit_stop = lo - horizon
    scaler = Scaler.fit(panel.features, fit_stop)
    scaled = scaler.transform(panel.features)
    y_scale = float(np.nanstd(panel.labels[:, :fit_stop])) or 1.0
    train = Windows(scaled, panel.labels, int(hp["seq_len"]), (0, fit_stop)).newest(cfg.max_train_samples)
    if len(train) < cfg.batch_size:
        raise ValueError(f"walk-forward block from {panel.timestamps[lo].date()} has only {len(train)} "
                         "training samples; move train.walk_forward.start later")
    model = fit(train, None, hp, max_epochs=epochs, batch_size=cfg.batch_size, patience=epochs,
                weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip, y_scale=y_scale, seed=seed).model
    refit = Predictor(model, hp, features, scaler, y_scale)
    block = Windows(scaled, panel.labels, int(hp["seq_len"]), (lo, hi), need_label=False)
    forecasts = forecast_frame(panel, block, refit.forecast_windows(block))
    if not last:
        return Refit(forecasts, None)
    # as the train stage's predictor: forecasts normalized downstream by their spread on the training window
    refit.set_forecast_scale(train)
    return Refit(forecasts, refit)


def walk_forward_forecasts(panel: Panel, hp: dict[str, Any], cfg: TrainParams, features: FeatureParams, *,
                           start: str, stop: int, horizon: int, epochs: int, seed: int,
                           pool: Pool = SERIAL) -> WalkForward:
    """Forecasts for bars in [block_starts[0], stop), refitting per block (each refit a task on ``pool``, seeded
    with ``seed``); ``features`` is the panel's recipe (bundled into the last refit's predictor)."""
    starts = block_starts(panel.timestamps, start, stop, cfg.walk_forward.refit_years)
    if not starts:
        raise ValueError(f"start {start} leaves no bar to forecast before the end of the data")
    for lo in starts:  # every block's sample count before any fit starts
        n = len(Windows(panel.features, panel.labels, int(hp["seq_len"]), (0, lo - horizon)))
        if min(n, cfg.max_train_samples) < cfg.batch_size:
            raise ValueError(f"walk-forward block from {panel.timestamps[lo].date()} has only {n} "
                             "training samples; move train.walk_forward.start later")
    calls = [(lo, hi, i == len(starts) - 1) for i, (lo, hi) in enumerate(zip(starts, [*starts[1:], stop],
                                                                             strict=True))]
    with progress("train walk-forward refits", len(starts)) as tracker:
        done = run_tasks(refit_block, calls, [seed] * len(calls), pool,
                         shared={"panel": panel, "hp": hp, "cfg": cfg, "features": features, "horizon": horizon,
                                 "epochs": epochs, "seed": seed},
                         on_done=lambda i, d: tracker.advance(
                             note=f"block from {panel.timestamps[calls[i][0]].date()} on {d.node[:8]}"))
    last = done[-1].value.predictor
    assert last is not None
    return WalkForward(pd.concat([d.value.forecasts for d in done], ignore_index=True), last,
                       [panel.timestamps[lo] for lo in starts],
                       node_record([f"refit from {panel.timestamps[lo].date()}" for lo in starts], done))


def out_of_sample_forecasts(panel: Panel, prep: Prepared, predictor: Predictor, hp: dict[str, Any], cfg: TrainParams,
                            features: FeatureParams, *, train_end: str, epochs: int, seed: int,
                            pool: Pool = SERIAL) -> WalkForward:
    """Forecasts no model saw the future of, and the predictor behind the latest ones.

    With ``cfg.walk_forward.start``: walk-forward refits from that date to the end of the data (it must cover the
    RL window, every bar after ``train_end``; ValueError otherwise), each a task on ``pool``. Without:
    ``predictor`` (trained on ``prep``'s training window) forecasts from the validation window on, with no refit.
    """
    if cfg.walk_forward.start:
        check_covers(panel.timestamps, cfg.walk_forward.start, after=train_end)
        return walk_forward_forecasts(panel, hp, cfg, features, start=cfg.walk_forward.start,
                                      stop=len(panel.timestamps), horizon=features.label_horizon, epochs=epochs,
                                      seed=seed, pool=pool)
    after = Windows(prep.scaled, panel.labels, predictor.seq_len, (prep.split.val[0], len(panel.timestamps)),
                    need_label=False)
    return WalkForward(forecast_frame(panel, after, predictor.forecast_windows(after)), predictor, [])
