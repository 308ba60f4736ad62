"""Stage tune: Ray Tune + OptunaSearch (TPE) + ASHA over the predictor; best config as a DVC output.

Each trial is a ledger trial (``tradepipe.tuning.ledger``): its best checkpoint's forecasts over the validation
window are traded as the backtest's forecast strategy (top quartile, ``costs``), and that Sharpe is recorded with
the trial's key in ``models/tune/best_config.json``.

The selection window is ``(split.select_end, split.train_end]`` (trials fit on the bars up to select_end): it ends
before the RL window ``(train_end, val_end]`` starts, so nothing about the predictor is chosen on the bars the
agent trains on. The best trial's best epoch is written too (``best_epoch``), the epoch count chosen there. With
``split.select_end: null`` the trials fit up to train_end and are selected on the RL window (the old layout).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import mlflow
from tradepipe.config import Params
from tradepipe.core.io import write_json
from tradepipe.features import feature_columns
from tradepipe.models.panel import make_panel, prepare
from tradepipe.paths import BEST_CONFIG, FEATURES, LABELS
from tradepipe.runtime.stage import run_stage
from tradepipe.tuning.ledger import forecast_sharpe, trial_key
from tradepipe.tuning.search import TrainingData, run_search


def tune(params: Params, root: Path) -> dict[str, float]:
    features = pd.read_parquet(root / FEATURES)
    panel = make_panel(features, feature_columns(params.features), pd.read_parquet(root / LABELS))
    split = params.split
    fit_end, select_end = (split.select_end, split.train_end) if split.select_end else (split.train_end, split.val_end)
    prep = prepare(panel, fit_end, select_end, params.features.label_horizon, split.embargo)
    data = TrainingData(prep.scaled, panel.labels, prep.split.train, prep.split.val, prep.y_scale,
                        params.train.max_train_samples)
    # simple returns of each bar over the validation window, (T_val, N) like the forecasts the trials score
    lo, hi = prep.split.val
    returns = np.nan_to_num(np.expm1(make_panel(features, ["logret_1"]).features[:, lo:hi, 0].T.astype(np.float64)))
    result = run_search(data, params.tune, params.train, params.seed,
                        score=lambda forecasts: forecast_sharpe(forecasts, returns, params.costs.rate))
    context = {"seed": params.seed, **{name: getattr(params, name).model_dump(mode="json")
                                       for name in ("split", "features", "train", "costs")}}
    ledger = [{"kind": "predictor", "key": trial_key("predictor", {"config": t["config"], **context}),
               "val_sharpe": t["val_sharpe"]} for t in result.trials]
    mlflow.set_tags({"tune.search_alg": result.search_alg, "tune.scheduler": result.scheduler})
    for i, trial in enumerate(result.trials):
        with mlflow.start_run(run_name=f"trial-{i}", nested=True):
            mlflow.log_params(trial["config"])
            mlflow.log_metrics({"val_loss": trial["val_loss"], "epochs": trial["epochs"],
                                "best_epoch": trial["best_epoch"], "val_sharpe": trial["val_sharpe"]})
            for epoch, loss in enumerate(trial["history"], start=1):
                mlflow.log_metric("epoch_val_loss", loss, step=epoch)
    best = min(result.trials, key=lambda t: float(t["val_loss"]))
    write_json({"config": result.best_config, "val_loss": result.best_val_loss, "best_epoch": best["best_epoch"],
                "selection_window": [fit_end, select_end], "n_trials": len(result.trials), "trials": ledger},
               root / BEST_CONFIG)
    mlflow.log_dict(result.best_config, "best_config.json")
    return {"n_trials": float(len(result.trials)), "best_val_loss": result.best_val_loss,
            "best_epoch": float(best["best_epoch"])}


if __name__ == "__main__":
    run_stage("tune", tune)
