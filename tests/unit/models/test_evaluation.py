"""Forecast evaluation and out-of-sample forecasts: the predictor's and the baselines' figures, frames, refits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tradepipe.config import FeatureParams, TrainParams, WalkForwardParams
from tradepipe.features import feature_columns
from tradepipe.models.cnn_lstm import CNNLSTM
from tradepipe.models.evaluation import evaluate_predictor, forecast_metrics, frame_metrics, momentum_signal
from tradepipe.models.panel import Panel, Windows, prepare
from tradepipe.models.predictor import Predictor
from tradepipe.models.walk_forward import forecast_frame, out_of_sample_forecasts

FP = FeatureParams(indicators=["rsi_14"], return_horizons=[1, 5], label_horizon=5)
COLUMNS = feature_columns(FP)
DAYS = pd.bdate_range("2012-01-02", periods=400, tz="UTC")
TRAIN = TrainParams(max_epochs=1, batch_size=64, patience=1, max_train_samples=2000)
HP = {"seq_len": 5, "conv_filters": 4, "kernel_size": 3, "lstm_hidden": 4}


def _panel(seed: int = 0) -> Panel:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(3, len(DAYS), len(COLUMNS))).astype(np.float32)
    labels = rng.normal(0, 0.02, (3, len(DAYS))).astype(np.float32)
    labels[:, -5:] = np.nan                          # the last bars' outcomes are not known yet
    return Panel(DAYS, ["A", "B", "C"], features, labels)


def _predictor(panel: Panel) -> tuple[Predictor, object]:
    torch.manual_seed(0)
    prep = prepare(panel, "2012-09-30", "2013-03-31", 5)
    model = CNNLSTM(len(COLUMNS), 4, 3, 4).eval()
    return Predictor(model, HP, FP, prep.scaler, prep.y_scale), prep


def test_momentum_is_the_return_over_the_label_horizon_else_the_first_horizon() -> None:
    panel = _panel()
    np.testing.assert_array_equal(momentum_signal(panel, COLUMNS, FP),
                                  panel.features[:, :, COLUMNS.index("logret_5")])
    other = FP.model_copy(update={"label_horizon": 3})
    np.testing.assert_array_equal(momentum_signal(panel, COLUMNS, other),
                                  panel.features[:, :, COLUMNS.index("logret_1")])


def test_evaluate_predictor_scores_its_forecasts_and_the_baselines_on_the_same_samples() -> None:
    panel = _panel()
    predictor, prep = _predictor(panel)
    windows = Windows(prep.scaled, panel.labels, 5, prep.split.val)
    momentum = momentum_signal(panel, COLUMNS, FP)
    metrics = evaluate_predictor(predictor, windows, momentum, panel.timestamps, "val")
    actual = panel.labels[windows.sym, windows.t]
    forecasts = predictor.forecast_windows(windows)
    assert metrics["val_mse"] == pytest.approx(float(np.mean((forecasts - actual.astype(np.float64)) ** 2)))
    assert metrics["val_zero_mse"] == pytest.approx(float(np.mean(actual.astype(np.float64) ** 2)))
    mom = forecast_metrics(momentum[windows.sym, windows.t], actual, panel.timestamps[windows.t].to_numpy())
    assert metrics["val_momentum_ic"] == pytest.approx(mom["ic"])
    assert set(metrics) == {f"val_{k}" for k in ("mse", "directional_accuracy", "ic", "rank_ic", "zero_mse",
                                                  "momentum_mse", "momentum_directional_accuracy",
                                                  "momentum_ic", "momentum_rank_ic")}


def test_frame_metrics_score_a_forecast_frame_where_its_outcome_is_known() -> None:
    panel = _panel()
    rows = [(t, s) for t in range(380, 400) for s in range(3)]
    frame = pd.DataFrame({"timestamp": DAYS[[t for t, _ in rows]], "symbol": [panel.symbols[s] for _, s in rows],
                          "prediction": np.linspace(-1, 1, len(rows))})
    metrics = frame_metrics(panel, frame, "walk_forward")
    known = [i for i, (t, _) in enumerate(rows) if t < 395]
    labels = np.array([panel.labels[s, t] for t, s in rows])[known]
    expected = forecast_metrics(frame["prediction"].to_numpy()[known], labels, frame["timestamp"].to_numpy()[known])
    assert metrics == {f"walk_forward_{k}": v for k, v in expected.items()}


def test_without_walk_forward_the_trained_predictor_forecasts_from_the_validation_window() -> None:
    panel = _panel()
    predictor, prep = _predictor(panel)
    oos = out_of_sample_forecasts(panel, prep, predictor, HP, TRAIN, FP, train_end="2012-09-30", epochs=1,
                                  seed=0)
    assert oos.last is predictor and oos.refits == []
    after = Windows(prep.scaled, panel.labels, 5, (prep.split.val[0], len(DAYS)), need_label=False)
    pd.testing.assert_frame_equal(oos.forecasts, forecast_frame(panel, after, predictor.forecast_windows(after)))
    assert oos.forecasts["timestamp"].min() == DAYS[prep.split.val[0]]
    assert oos.forecasts["timestamp"].max() == DAYS[-1]          # unlabelled last bars are forecast too
    first = oos.forecasts.iloc[:3]
    assert list(first["symbol"]) == ["A", "B", "C"] and first["timestamp"].nunique() == 1


def test_walk_forward_must_cover_the_rl_window() -> None:
    panel = _panel()
    predictor, prep = _predictor(panel)
    late = TRAIN.model_copy(update={"walk_forward": WalkForwardParams(start="2013-01-01")})
    with pytest.raises(ValueError, match="start=2013-01-01 is after"):
        out_of_sample_forecasts(panel, prep, predictor, HP, late, FP, train_end="2012-09-30", epochs=1, seed=0)
