"""Training loop: AdamW, cosine learning-rate schedule, gradient clipping, early stopping, fixed seeds, and
optional checkpoints of the best state to resume from."""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tradepipe.config import MODEL_KEYS
from tradepipe.core.types import F32
from tradepipe.models.cnn_lstm import CNNLSTM
from tradepipe.models.panel import Windows

REGRESSION, CLASSIFICATION = "regression", "classification"
CHECKPOINT = "checkpoint.pt"  # inside a checkpoint directory


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


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file in the same directory, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def fit(train: Windows, val: Windows | None, hp: dict[str, Any], *, max_epochs: int, batch_size: int,
        patience: int, weight_decay: float, grad_clip: float, y_scale: float, seed: int,
        on_epoch: Callable[[dict[str, float], bool], None] | None = None,
        checkpoint_dir: Path | None = None) -> FitResult:
    """Train on ``train`` and return the model with the best ``val`` loss (early stopping after ``patience``).

    ``hp["task"]`` picks the loss: MSE on targets divided by ``y_scale`` (regression, the default) or binary
    cross-entropy on the sign (classification). Without ``val`` it trains ``max_epochs`` and returns the last model.
    ``on_epoch(record, improved)`` sees every epoch's losses and whether it is the new best. With
    ``checkpoint_dir``, each new best state (model, optimizer, schedule, random streams, epoch, history) is saved
    there atomically, and a checkpoint already there is resumed from: the run then ends exactly as an
    uninterrupted one would.
    """
    task = hp.get("task", REGRESSION)
    seed_everything(seed)
    n_features = train.view.shape[2]
    model = build_model(n_features, hp)
    opt = torch.optim.AdamW(model.parameters(), lr=float(hp["lr"]), weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_epochs)
    rng = np.random.default_rng(seed)
    best = FitResult(copy.deepcopy(model), float("inf"), -1)
    run = {"hp": hp, "n_features": n_features, "max_epochs": max_epochs, "batch_size": batch_size,
           "weight_decay": weight_decay, "y_scale": y_scale, "seed": seed, "n_train": len(train),
           "n_val": len(val) if val is not None else 0}
    path = checkpoint_dir / CHECKPOINT if checkpoint_dir is not None else None
    start = 0
    if path is not None and path.exists():
        state = torch.load(path, weights_only=True)
        if state["run"] != run:
            raise ValueError(f"checkpoint {path} belongs to another training run (hyperparameters or data "
                             "differ); delete it or pass another checkpoint directory")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        start = int(state["epoch"])
        best = FitResult(copy.deepcopy(model), float(state["best_val_loss"]), start, list(state["history"]))
    for epoch in range(start, max_epochs):
        model.train()
        order = rng.permutation(len(train))
        total = 0.0
        for lo in range(0, len(order), batch_size):
            x, y = train.batch(order[lo:lo + batch_size])
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
        improved = val is None or record["val_loss"] < best.best_val_loss
        if improved:
            best.model, best.best_val_loss, best.best_epoch = copy.deepcopy(model), record["val_loss"], epoch + 1
            if path is not None:
                _save_checkpoint(path, {"run": run, "epoch": epoch + 1, "best_val_loss": record["val_loss"],
                                        "history": best.history, "model": model.state_dict(),
                                        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                        "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()})
        if on_epoch is not None:
            on_epoch(record, improved)
        if not improved and epoch + 1 - best.best_epoch >= patience:
            break
    return best
