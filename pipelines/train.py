"""Stage train: the CNN-LSTM with the tuned config; evaluation against baselines; out-of-sample forecasts.

The epoch count is ``train.epochs``'s choice. ``tuned`` (the default): the best epoch of tune's winning trial
(``best_epoch`` in best_config.json, at most ``train.max_epochs``), chosen on tune's selection window; with
``split.select_end`` set that window ends before the RL window, so no choice about the predictor is made on the bars
the agent trains on, and the model trains that many epochs on the bars up to ``split.train_end`` without early
stopping. ``early_stopping``: early stopping (``train.patience``) on the validation window (train_end, val_end], which
is the RL window. The walk-forward refits train the same count either way. The validation window's figures are
reported in both cases.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import infer_signature

import mlflow
from tradepipe.config import Params
from tradepipe.core.io import read_json, write_json, write_parquet
from tradepipe.core.parallel import Pool
from tradepipe.features import feature_columns
from tradepipe.models.calibration import calibration_table, plot_calibration
from tradepipe.models.evaluation import evaluate_predictor, frame_metrics, momentum_signal
from tradepipe.models.panel import Windows, make_panel, prepare
from tradepipe.models.predictor import PYFUNC_CODE, Predictor, PredictorModel
from tradepipe.models.training import FitResult, fit
from tradepipe.models.walk_forward import out_of_sample_forecasts
from tradepipe.paths import BARS, BEST_CONFIG, CALIBRATION, FEATURES, LABELS, LIVE_PREDICTOR, PREDICTIONS, PREDICTOR
from tradepipe.runtime.stage import StageError, run_stage


def _log_epoch(record: dict[str, float], _improved: bool) -> None:
    mlflow.log_metrics({k: v for k, v in record.items() if math.isfinite(v)}, step=int(record["epoch"]))


def tuned_epochs(best: dict[str, Any], max_epochs: int) -> int:
    """The epoch count tune chose (``best`` is best_config.json), at most ``max_epochs``; StageError without one."""
    if not isinstance(best.get("best_epoch"), int) or best["best_epoch"] < 1:
        raise StageError(f"{BEST_CONFIG} has no best_epoch (written before it existed) and train.epochs is 'tuned': "
                         "rerun tune (`dvc repro --force tune`) or set train.epochs: early_stopping in params.yaml")
    return min(int(best["best_epoch"]), max_epochs)


def _log_predictor(predictor: Predictor, bars: pd.DataFrame, root: Path) -> None:
    """Log ``predictor`` as a pyfunc model (input example: each symbol's latest bars); record the run and URI."""
    example = bars.groupby("symbol").tail(predictor.seq_len + 210)
    example = example.assign(timestamp=example["timestamp"].astype(str)).reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        predictor.save(Path(tmp) / "predictor")
        model = PredictorModel()
        model.predictor = predictor
        info = mlflow.pyfunc.log_model(name="predictor", python_model=str(PYFUNC_CODE),  # models from code
                                       artifacts={"predictor": str(Path(tmp) / "predictor")},
                                       signature=infer_signature(example, model.predict(None, example)),
                                       input_example=example)
    run = mlflow.active_run()
    assert run is not None
    write_json({"run_id": run.info.run_id, "model_uri": info.model_uri}, root / PREDICTOR / "mlflow.json")


def _fit(params: Params, best: dict[str, Any], hp: dict[str, Any], train_w: Windows, val_w: Windows,
         y_scale: float) -> FitResult:
    """The model trained for the epochs ``train.epochs`` chooses (the module doc); the choice tagged in MLflow."""
    cfg = params.train
    tuned = cfg.epochs == "tuned"
    # tuned: a fixed count and no validation set (fit returns the last epoch's model); else early stopping on val_w
    result = fit(train_w, None if tuned else val_w, hp, max_epochs=tuned_epochs(best, cfg.max_epochs) if tuned
                 else cfg.max_epochs, batch_size=cfg.batch_size, patience=cfg.patience, weight_decay=cfg.weight_decay,
                 grad_clip=cfg.grad_clip, y_scale=y_scale, seed=params.seed, on_epoch=_log_epoch)
    mlflow.set_tag("train.epochs", f"{result.best_epoch} ({cfg.epochs}: " + (
        f"tune's best epoch, selected on {best.get('selection_window')})" if tuned
        else f"early stopping on ({params.split.train_end}, {params.split.val_end}])"))
    return result


def train(params: Params, root: Path) -> dict[str, float]:
    columns = feature_columns(params.features)
    panel = make_panel(pd.read_parquet(root / FEATURES), columns, pd.read_parquet(root / LABELS))
    prep = prepare(panel, params.split.train_end, params.split.val_end, params.features.label_horizon,
                   params.split.embargo)
    best = read_json(root / BEST_CONFIG)
    hp = {**best["config"], "task": params.train.task}
    seq_len, cfg = int(hp["seq_len"]), params.train
    train_w = Windows(prep.scaled, panel.labels, seq_len, prep.split.train).newest(cfg.max_train_samples)
    val_w = Windows(prep.scaled, panel.labels, seq_len, prep.split.val)
    test_w = Windows(prep.scaled, panel.labels, seq_len, prep.split.test)
    result = _fit(params, best, hp, train_w, val_w, prep.y_scale)
    predictor = Predictor(result.model, hp, params.features, prep.scaler, prep.y_scale)
    predictor.set_forecast_scale(train_w)
    predictor.save(root / PREDICTOR)

    momentum = momentum_signal(panel, columns, params.features)
    metrics = {"best_epoch": float(result.best_epoch), "train_samples": float(len(train_w)),
               **evaluate_predictor(predictor, val_w, momentum, panel.timestamps, "val"),
               **evaluate_predictor(predictor, test_w, momentum, panel.timestamps, "test")}
    table = calibration_table(predictor.forecast_windows(test_w), test_w.labels[test_w.sym, test_w.t], predictor.task)
    mlflow.log_artifact(str(plot_calibration(table, root / CALIBRATION, "test-window calibration")), "train")
    mlflow.log_table(table, "train/calibration.json")

    # Out-of-sample forecasts (walk-forward refits from train.walk_forward.start, else the trained model's from
    # the validation window); the predictor behind the latest of them is saved for the live policy.
    try:
        oos = out_of_sample_forecasts(panel, prep, predictor, hp, cfg, params.features,
                                      train_end=params.split.train_end, epochs=max(result.best_epoch, 1),
                                      seed=params.seed, pool=Pool(**params.parallel.model_dump()))
    except ValueError as exc:
        raise StageError(f"params.yaml train.walk_forward: {exc}") from exc
    if cfg.walk_forward.start:
        mlflow.set_tag("walk_forward.refits", ", ".join(str(t.date()) for t in oos.refits))
        mlflow.set_tag("ray.nodes", ", ".join(oos.tasks["nodes"]))  # where the refits ran (one Ray task each)
        mlflow.log_dict(oos.tasks, "train/ray_tasks.json")
        metrics.update(frame_metrics(panel, oos.forecasts, "walk_forward"))
    oos.last.save(root / LIVE_PREDICTOR)
    write_parquet(oos.forecasts, root / PREDICTIONS)
    _log_predictor(predictor, pd.read_parquet(root / BARS), root)
    return metrics


if __name__ == "__main__":
    run_stage("train", train)
