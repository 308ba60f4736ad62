"""The trained predictor as one bundle (network, scaler, window, feature recipe) and its MLflow pyfunc."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel

from tradepipe.config import FeatureParams
from tradepipe.core.scaler import Scaler
from tradepipe.core.types import F32
from tradepipe.features import build_features, feature_columns
from tradepipe.models.cnn_lstm import CNNLSTM
from tradepipe.models.panel import Panel, Windows, make_panel
from tradepipe.models.training import REGRESSION, build_model, predict_windows, to_forecast


@dataclass
class Predictor:
    """Everything needed to turn raw bars into forecasts, exactly as in training."""

    model: CNNLSTM
    hp: dict[str, Any]
    features: FeatureParams
    scaler: Scaler
    y_scale: float
    forecast_scale: float = 1.0  # std of the forecasts on the training window, to normalize them downstream

    @property
    def seq_len(self) -> int:
        return int(self.hp["seq_len"])

    @property
    def task(self) -> str:
        return str(self.hp.get("task", REGRESSION))

    def forecast_windows(self, windows: Windows) -> F32:
        """Forecasts for already-scaled ``windows``, in their order (a return, or P(up) - 0.5)."""
        return to_forecast(predict_windows(self.model, windows), self.task, self.y_scale)

    def set_forecast_scale(self, train: Windows) -> None:
        """Set ``forecast_scale`` to the spread of the forecasts on the training windows ``train`` (1.0 if flat)."""
        self.forecast_scale = float(np.std(self.forecast_windows(train))) or 1.0

    def predict_panel(self, panel: Panel, latest_only: bool = False) -> F32:
        """(N, T) forecasts of the forward log return; NaN where the window is incomplete (and, with
        ``latest_only``, everywhere but each symbol's last complete window)."""
        windows = Windows(self.scaler.transform(panel.features), panel.labels, self.seq_len,
                          (0, len(panel.timestamps)), need_label=False)
        if latest_only:
            windows.last_per_symbol()
        out = np.full(panel.labels.shape, np.nan, dtype=np.float32)
        out[windows.sym, windows.t] = self.forecast_windows(windows)
        return out

    def predict_bars(self, bars: pd.DataFrame, latest_only: bool = False) -> pd.DataFrame:
        """Forecasts for every (timestamp, symbol) of canonical ``bars`` with a full window (``latest_only``:
        each symbol's last one)."""
        return self.predict_features(build_features(bars, self.features), latest_only)

    def predict_features(self, features: pd.DataFrame, latest_only: bool = False) -> pd.DataFrame:
        """:meth:`predict_bars` from the feature table ``build_features`` made of the bars (computed once)."""
        panel = make_panel(features, feature_columns(self.features))
        pred = self.predict_panel(panel, latest_only)
        frame = pd.DataFrame(pred.T, index=panel.timestamps, columns=panel.symbols)
        long = frame.rename_axis(index="timestamp", columns="symbol").stack().rename("prediction")
        return long.dropna().reset_index()

    def save(self, directory: Path) -> None:
        """Write the bundle into ``directory`` (weights, scaler, recipe)."""
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), directory / "weights.pt")
        meta = {"hp": self.hp, "features": self.features.model_dump(), "y_scale": self.y_scale,
                "forecast_scale": self.forecast_scale,
                "scaler_mean": self.scaler.mean.tolist(), "scaler_std": self.scaler.std.tolist()}
        (directory / "predictor.json").write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> Predictor:
        """Read a bundle written by :meth:`save`."""
        meta = json.loads((directory / "predictor.json").read_text())
        features = FeatureParams.model_validate(meta["features"])
        model = build_model(len(feature_columns(features)), meta["hp"])
        model.load_state_dict(torch.load(directory / "weights.pt", weights_only=True))
        model.eval()
        scaler = Scaler(np.asarray(meta["scaler_mean"], np.float32), np.asarray(meta["scaler_std"], np.float32))
        return cls(model, meta["hp"], features, scaler, float(meta["y_scale"]), float(meta["forecast_scale"]))


# log with ``mlflow.pyfunc.log_model(python_model=str(PYFUNC_CODE), artifacts={"predictor": DIR})``: models from code
PYFUNC_CODE = Path(__file__).with_name("_predictor_pyfunc.py")


class PredictorModel(PythonModel):
    """MLflow pyfunc: recent canonical bars in, the latest forecast per symbol out."""

    def load_context(self, context: Any) -> None:
        self.predictor = Predictor.load(Path(context.artifacts["predictor"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
                ) -> pd.DataFrame:
        bars = model_input.assign(timestamp=pd.to_datetime(model_input["timestamp"], utc=True))
        latest = self.predictor.predict_bars(bars, latest_only=True).sort_values(["timestamp", "symbol"])
        return latest.assign(timestamp=latest["timestamp"].astype(str)).reset_index(drop=True)
