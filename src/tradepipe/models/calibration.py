"""Calibration: do larger forecasts come with larger realized outcomes? A table and a plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tradepipe.core.io import atomic_path
from tradepipe.models.training import CLASSIFICATION


def calibration_table(forecast: np.ndarray, actual: np.ndarray, task: str, bins: int = 10) -> pd.DataFrame:
    """Per forecast-quantile bin: mean forecast, mean realized outcome and count.

    The outcome is the forward log return (regression) or the up-move frequency minus 0.5 (classification),
    so a calibrated model lies on the diagonal.
    """
    outcome = (actual > 0).astype(float) - 0.5 if task == CLASSIFICATION else actual
    frame = pd.DataFrame({"forecast": forecast, "outcome": outcome})
    frame["bin"] = pd.qcut(frame["forecast"].rank(method="first"), bins, labels=False)
    table = frame.groupby("bin").agg(forecast=("forecast", "mean"), outcome=("outcome", "mean"),
                                     count=("outcome", "size"))
    return table.reset_index(drop=True)


def plot_calibration(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Write the reliability diagram of ``table`` to ``path`` (PNG)."""
    fig = Figure(figsize=(5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lo = float(min(table["forecast"].min(), table["outcome"].min()))
    hi = float(max(table["forecast"].max(), table["outcome"].max()))
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    ax.plot(table["forecast"], table["outcome"], marker="o", label="model (decile bins)")
    ax.set_xlabel("mean forecast")
    ax.set_ylabel("mean realized outcome")
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path
