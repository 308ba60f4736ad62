"""Stage tune: Ray Tune + OptunaSearch (TPE) + ASHA over the predictor; best config as a DVC output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import mlflow
from tradepipe.config import Params
from tradepipe.core.io import write_json
from tradepipe.features import feature_columns
from tradepipe.models.panel import make_panel, prepare
from tradepipe.paths import BEST_CONFIG, FEATURES, LABELS
from tradepipe.runtime.stage import run_stage
from tradepipe.tuning.search import TrainingData, run_search


def tune(params: Params, root: Path) -> dict[str, float]:
    panel = make_panel(pd.read_parquet(root / FEATURES), feature_columns(params.features),
                       pd.read_parquet(root / LABELS))
    prep = prepare(panel, params.split.train_end, params.split.val_end, params.features.label_horizon,
                   params.split.embargo)
    data = TrainingData(prep.scaled, panel.labels, prep.split.train, prep.split.val, prep.y_scale,
                        params.train.max_train_samples)
    result = run_search(data, params.tune, params.train, params.seed)
    mlflow.set_tags({"tune.search_alg": result.search_alg, "tune.scheduler": result.scheduler})
    for i, trial in enumerate(result.trials):
        with mlflow.start_run(run_name=f"trial-{i}", nested=True):
            mlflow.log_params(trial["config"])
            mlflow.log_metrics({"val_loss": trial["val_loss"], "epochs": trial["epochs"],
                                "best_epoch": trial["best_epoch"]})
            for epoch, loss in enumerate(trial["history"], start=1):
                mlflow.log_metric("epoch_val_loss", loss, step=epoch)
    write_json({"config": result.best_config, "val_loss": result.best_val_loss,
                "n_trials": len(result.trials)}, root / BEST_CONFIG)
    mlflow.log_dict(result.best_config, "best_config.json")
    return {"n_trials": float(len(result.trials)), "best_val_loss": result.best_val_loss}


if __name__ == "__main__":
    run_stage("tune", tune)
