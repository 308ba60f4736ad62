"""Stage train: the CNN-LSTM with the tuned config; evaluation against baselines; out-of-sample forecasts."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.models import infer_signature

import mlflow
from tradepipe.config import Params
from tradepipe.core.io import read_json, write_json, write_parquet
from tradepipe.features import feature_columns
from tradepipe.models.calibration import calibration_table, plot_calibration
from tradepipe.models.evaluation import baseline_metrics, forecast_metrics
from tradepipe.models.panel import Panel, Windows, make_panel, prepare
from tradepipe.models.predictor import Predictor, PredictorModel
from tradepipe.models.training import fit
from tradepipe.models.walk_forward import check_covers, walk_forward_forecasts
from tradepipe.paths import BARS, BEST_CONFIG, CALIBRATION, FEATURES, LABELS, LIVE_PREDICTOR, PREDICTIONS, PREDICTOR
from tradepipe.runtime.stage import StageError, run_stage


def _evaluate(predictor: Predictor, windows: Windows, momentum: np.ndarray, panel: Panel,
              prefix: str) -> dict[str, float]:
    """Forecast metrics of the predictor and of the baselines; ``momentum`` is the raw (N, T) signal."""
    actual = windows.labels[windows.sym, windows.t]
    ts = panel.timestamps[windows.t].to_numpy()
    metrics = {**forecast_metrics(predictor.forecast_windows(windows), actual, ts),
               **baseline_metrics(actual, momentum[windows.sym, windows.t], ts)}
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def _frame(panel: Panel, windows: Windows, forecasts: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": panel.timestamps[windows.t], "symbol": np.asarray(panel.symbols)[windows.sym],
                         "prediction": forecasts})


def train(params: Params, root: Path) -> dict[str, float]:
    columns = feature_columns(params.features)
    horizon = params.features.label_horizon
    panel = make_panel(pd.read_parquet(root / FEATURES), columns, pd.read_parquet(root / LABELS))
    prep = prepare(panel, params.split.train_end, params.split.val_end, horizon, params.split.embargo)
    hp = {**read_json(root / BEST_CONFIG)["config"], "task": params.train.task}
    seq_len = int(hp["seq_len"])
    cfg = params.train
    train_w = Windows(prep.scaled, panel.labels, seq_len, prep.split.train).newest(cfg.max_train_samples)
    val_w = Windows(prep.scaled, panel.labels, seq_len, prep.split.val)
    test_w = Windows(prep.scaled, panel.labels, seq_len, prep.split.test)
    result = fit(train_w, val_w, hp, max_epochs=cfg.max_epochs, batch_size=cfg.batch_size, patience=cfg.patience,
                 weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip, y_scale=prep.y_scale, seed=params.seed,
                 on_epoch=lambda rec, _best: mlflow.log_metrics(rec, step=int(rec["epoch"])))
    predictor = Predictor(result.model, hp, params.features, prep.scaler, prep.y_scale)
    predictor.set_forecast_scale(train_w)
    predictor.save(root / PREDICTOR)

    horizons = params.features.return_horizons
    lookback = horizon if horizon in horizons else horizons[0]
    momentum = panel.features[:, :, columns.index(f"logret_{lookback}")]
    metrics = {"best_epoch": float(result.best_epoch), "train_samples": float(len(train_w)),
               **_evaluate(predictor, val_w, momentum, panel, "val"),
               **_evaluate(predictor, test_w, momentum, panel, "test")}
    table = calibration_table(predictor.forecast_windows(test_w), test_w.labels[test_w.sym, test_w.t], predictor.task)
    mlflow.log_artifact(str(plot_calibration(table, root / CALIBRATION, "test-window calibration")), "train")
    mlflow.log_table(table, "train/calibration.json")

    # Out-of-sample forecasts: walk-forward refits from train.walk_forward.start to the end of the data (each
    # block from a model fitted only before it); without a start, the trained model's from the validation window.
    # The predictor behind the latest forecasts (the last refit, or the trained one) is saved for the live policy.
    live = predictor
    if cfg.walk_forward.start:
        try:
            check_covers(panel.timestamps, cfg.walk_forward.start, after=params.split.train_end)  # the RL window
            wf = walk_forward_forecasts(panel, hp, cfg, params.features, start=cfg.walk_forward.start,
                                        stop=len(panel.timestamps), horizon=horizon,
                                        epochs=max(result.best_epoch, 1), seed=params.seed)
        except ValueError as exc:
            raise StageError(f"params.yaml train.walk_forward: {exc}") from exc
        forecasts, live = wf.forecasts, wf.last
        mlflow.set_tag("walk_forward.refits", ", ".join(str(t.date()) for t in wf.refits))
        labels = panel.labels[np.searchsorted(panel.symbols, forecasts["symbol"]),
                              panel.timestamps.searchsorted(forecasts["timestamp"])]
        ok = np.isfinite(labels)
        metrics.update({f"walk_forward_{k}": v for k, v in forecast_metrics(
            forecasts["prediction"].to_numpy()[ok], labels[ok], forecasts["timestamp"].to_numpy()[ok]).items()})
    else:
        after = Windows(prep.scaled, panel.labels, seq_len, (prep.split.val[0], len(panel.timestamps)),
                        need_label=False)
        forecasts = _frame(panel, after, predictor.forecast_windows(after))
    live.save(root / LIVE_PREDICTOR)
    write_parquet(forecasts, root / PREDICTIONS)

    bars = pd.read_parquet(root / BARS)
    example = bars.groupby("symbol").tail(seq_len + 210)
    example = example.assign(timestamp=example["timestamp"].astype(str)).reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        predictor.save(Path(tmp) / "predictor")
        model = PredictorModel()
        model.predictor = predictor
        info = mlflow.pyfunc.log_model(name="predictor", python_model=PredictorModel(),
                                       artifacts={"predictor": str(Path(tmp) / "predictor")},
                                       signature=infer_signature(example, model.predict(None, example)),
                                       input_example=example)
    run = mlflow.active_run()
    assert run is not None
    write_json({"run_id": run.info.run_id, "model_uri": info.model_uri}, root / PREDICTOR / "mlflow.json")
    return metrics


if __name__ == "__main__":
    run_stage("train", train)
