"""Walk-forward forecasts: each block of bars is predicted by a model fitted only on bars before it.

For a block starting at bar b, the scaler, the target scale and the network are fitted on samples whose
label window ends before b (a purge of the label horizon), so no forecast in the block saw its future.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tradepipe.config import TrainParams
from tradepipe.models.panel import Panel, Scaler, Windows
from tradepipe.models.training import fit, predict_windows, to_forecast


def block_starts(timestamps: pd.DatetimeIndex, start: str, stop: int, refit_years: int) -> list[int]:
    """Bar positions where a refit happens: ``start`` then every ``refit_years`` years, before ``stop``."""
    dates = pd.date_range(pd.Timestamp(start, tz="UTC"), timestamps[stop - 1], freq=pd.DateOffset(years=refit_years))
    return sorted({int(timestamps.searchsorted(d)) for d in dates} - {stop})


def walk_forward_forecasts(panel: Panel, hp: dict[str, Any], cfg: TrainParams, *, start: str, stop: int,
                           horizon: int, epochs: int, seed: int) -> pd.DataFrame:
    """Forecasts (timestamp, symbol, prediction) for bars in [block_starts[0], stop), refitting per block."""
    starts = block_starts(panel.timestamps, start, stop, cfg.walk_forward.refit_years)
    frames = []
    for lo, hi in zip(starts, [*starts[1:], stop], strict=True):
        fit_stop = lo - horizon
        scaler = Scaler.fit(panel.features, fit_stop)
        scaled = scaler.transform(panel.features)
        y_scale = float(np.nanstd(panel.labels[:, :fit_stop])) or 1.0
        train = Windows(scaled, panel.labels, int(hp["seq_len"]), (0, fit_stop)).newest(cfg.max_train_samples)
        if len(train) < cfg.batch_size:
            raise ValueError(f"walk-forward block from {panel.timestamps[lo].date()} has only {len(train)} training "
                             "samples; move train.walk_forward.start later")
        model = fit(train, None, hp, max_epochs=epochs, batch_size=cfg.batch_size, patience=epochs,
                    weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip, y_scale=y_scale, seed=seed).model
        block = Windows(scaled, panel.labels, int(hp["seq_len"]), (lo, hi), need_label=False)
        forecasts = to_forecast(predict_windows(model, block), str(hp.get("task", "regression")), y_scale)
        frames.append(pd.DataFrame({"timestamp": panel.timestamps[block.t],
                                    "symbol": np.asarray(panel.symbols)[block.sym], "prediction": forecasts}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["timestamp", "symbol",
                                                                                      "prediction"])
