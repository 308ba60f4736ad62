"""Stage train: the CNN-LSTM with the tuned config; evaluation against baselines; out-of-sample forecasts."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.models import infer_signature

import mlflow
from tradepipe.config import Params
from tradepipe.data.store import read_json, write_json, write_parquet
from tradepipe.features import feature_columns
from tradepipe.models.evaluation import baseline_metrics, forecast_metrics
from tradepipe.models.panel import Windows, make_panel, prepare
from tradepipe.models.predictor import Predictor, PredictorModel
from tradepipe.models.training import fit, predict_windows
from tradepipe.stage import run_stage

BARS = Path("data/raw/bars.parquet")
FEATURES = Path("data/features/features.parquet")
LABELS = Path("data/features/labels.parquet")
BEST = Path("models/tune/best_config.json")
PREDICTOR = Path("models/predictor")
PREDICTIONS = Path("data/predictions/predictions.parquet")


def _evaluate(predictor: Predictor, windows: Windows, momentum: np.ndarray, timestamps: pd.DatetimeIndex,
              prefix: str) -> dict[str, float]:
    """Forecast metrics of the predictor and of the baselines; ``momentum`` is the raw (N, T) signal."""
    pred = predict_windows(predictor.model, windows) * predictor.y_scale
    actual = windows.labels[windows.sym, windows.t]
    ts = timestamps[windows.t].to_numpy()
    metrics = {**forecast_metrics(pred, actual, ts),
               **baseline_metrics(actual, momentum[windows.sym, windows.t], ts)}
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def train(params: Params, root: Path) -> dict[str, float]:
    columns = feature_columns(params.features)
    panel = make_panel(pd.read_parquet(root / FEATURES), columns, pd.read_parquet(root / LABELS))
    prep = prepare(panel, params.split.train_end, params.split.val_end, params.features.label_horizon)
    hp = {**read_json(root / BEST)["config"]}
    seq_len = int(hp["seq_len"])
    train_w = Windows(prep.scaled, panel.labels, seq_len, prep.split.train).newest(params.train.max_train_samples)
    val_w = Windows(prep.scaled, panel.labels, seq_len, prep.split.val)
    test_w = Windows(prep.scaled, panel.labels, seq_len, prep.split.test)
    cfg = params.train
    result = fit(train_w, val_w, hp, max_epochs=cfg.max_epochs, batch_size=cfg.batch_size, patience=cfg.patience,
                 weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip, y_scale=prep.y_scale, seed=params.seed,
                 on_epoch=lambda rec: mlflow.log_metrics(rec, step=int(rec["epoch"])))
    predictor = Predictor(result.model, hp, params.features, prep.scaler, prep.y_scale)
    predictor.save(root / PREDICTOR)

    horizons = params.features.return_horizons
    lookback = params.features.label_horizon if params.features.label_horizon in horizons else horizons[0]
    momentum = panel.features[:, :, columns.index(f"logret_{lookback}")]
    metrics = {"best_epoch": float(result.best_epoch), "train_samples": float(len(train_w)),
               **_evaluate(predictor, val_w, momentum, panel.timestamps, "val"),
               **_evaluate(predictor, test_w, momentum, panel.timestamps, "test")}

    # Out-of-sample forecasts: every bar after the training window (the model never saw them).
    oos = Windows(prep.scaled, panel.labels, seq_len, (prep.split.val[0], len(panel.timestamps)), need_label=False)
    preds = pd.DataFrame({"timestamp": panel.timestamps[oos.t], "symbol": np.asarray(panel.symbols)[oos.sym],
                          "prediction": predict_windows(predictor.model, oos) * prep.y_scale})
    write_parquet(preds, root / PREDICTIONS)

    bars = pd.read_parquet(root / BARS)
    example = bars[bars["timestamp"] <= bars["timestamp"].unique()[-1]].groupby("symbol").tail(seq_len + 210)
    example = example.assign(timestamp=example["timestamp"].astype(str)).reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        predictor.save(Path(tmp) / "predictor")
        model = PredictorModel()
        model.predictor = predictor
        output = model.predict(None, example)
        info = mlflow.pyfunc.log_model(name="predictor", python_model=PredictorModel(),
                                       artifacts={"predictor": str(Path(tmp) / "predictor")},
                                       signature=infer_signature(example, output), input_example=example)
    write_json({"run_id": mlflow.active_run().info.run_id, "model_uri": info.model_uri},  # type: ignore[union-attr]
               root / PREDICTOR / "mlflow.json")
    return metrics


if __name__ == "__main__":
    run_stage("train", train, sections=("train", "split", "features"))
