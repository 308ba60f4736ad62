"""Training loop: AdamW, cosine learning-rate schedule, gradient clipping, early stopping, fixed seeds."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tradepipe.models.cnn_lstm import CNNLSTM
from tradepipe.models.panel import F32, Windows

MODEL_KEYS = ("conv_filters", "kernel_size", "lstm_hidden", "lstm_layers", "dropout", "attention")
REGRESSION, CLASSIFICATION = "regression", "classification"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; make torch deterministic on CPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def build_model(n_features: int, hp: dict[str, Any]) -> CNNLSTM:
    """The network for hyperparameters ``hp`` (keys in MODEL_KEYS; missing ones take defaults)."""
    return CNNLSTM(n_features, **{k: hp[k] for k in MODEL_KEYS if k in hp})


@dataclass
class FitResult:
    """The best model (by validation loss) and the per-epoch history."""

    model: CNNLSTM
    best_val_loss: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)


def predict_windows(model: nn.Module, windows: Windows, batch_size: int = 4096) -> F32:
    """Model outputs for every sample of ``windows``, in its order."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            x, _ = windows.batch(np.arange(start, min(start + batch_size, len(windows))))
            out.append(model(torch.from_numpy(x)).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def to_forecast(raw: F32, task: str, y_scale: float) -> F32:
    """Network outputs → forecasts: a forward log return (regression) or P(up) - 0.5 (classification)."""
    if task == CLASSIFICATION:
        return (1.0 / (1.0 + np.exp(-raw)) - 0.5).astype(np.float32)
    return (raw * y_scale).astype(np.float32)


def _loss(task: str, out: torch.Tensor, y: torch.Tensor, y_scale: float) -> torch.Tensor:
    if task == CLASSIFICATION:
        return nn.functional.binary_cross_entropy_with_logits(out, (y > 0).float())
    return nn.functional.mse_loss(out, y / y_scale)


def _val_loss(model: nn.Module, val: Windows, task: str, y_scale: float) -> float:
    pred = torch.from_numpy(predict_windows(model, val))
    y = torch.from_numpy(val.batch(np.arange(len(val)))[1])
    return float(_loss(task, pred, y, y_scale))


def fit(train: Windows, val: Windows | None, hp: dict[str, Any], *, max_epochs: int, batch_size: int,
        patience: int, weight_decay: float, grad_clip: float, y_scale: float, seed: int,
        on_epoch: Callable[[dict[str, float]], None] | None = None) -> FitResult:
    """Train on ``train`` and return the model with the best ``val`` loss (early stopping after ``patience``).

    ``hp["task"]`` picks the loss: MSE on targets divided by ``y_scale`` (regression, the default) or binary
    cross-entropy on the sign (classification). Without ``val`` it trains ``max_epochs`` and returns the last model.
    """
    task = hp.get("task", REGRESSION)
    seed_everything(seed)
    n_features = train.view.shape[2]
    model = build_model(n_features, hp)
    opt = torch.optim.AdamW(model.parameters(), lr=float(hp["lr"]), weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_epochs)
    rng = np.random.default_rng(seed)
    best = FitResult(copy.deepcopy(model), float("inf"), -1)
    for epoch in range(max_epochs):
        model.train()
        order = rng.permutation(len(train))
        total = 0.0
        for start in range(0, len(order), batch_size):
            x, y = train.batch(order[start:start + batch_size])
            loss = _loss(task, model(torch.from_numpy(x)), torch.from_numpy(y), y_scale)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            total += loss.item() * len(x)
        sched.step()
        record = {"epoch": epoch + 1, "train_loss": total / len(order),
                  "val_loss": _val_loss(model, val, task, y_scale) if val is not None else float("nan")}
        best.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if val is None or record["val_loss"] < best.best_val_loss:
            best.model, best.best_val_loss, best.best_epoch = copy.deepcopy(model), record["val_loss"], epoch + 1
        elif epoch + 1 - best.best_epoch >= patience:
            break
    return best
