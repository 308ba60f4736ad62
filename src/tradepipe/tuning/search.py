"""Ray Tune + OptunaSearch + ASHAScheduler over the CNN-LSTM's hyperparameters."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from tradepipe.config import SearchDim, TrainParams, TuneParams
from tradepipe.models.panel import F32, Windows
from tradepipe.models.training import fit

METRIC = "val_loss"


def tune_space(space: dict[str, SearchDim]) -> dict[str, Any]:
    """Translate params.yaml's search space into Ray Tune sampling domains."""
    out: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.type == "choice":
            out[name] = tune.choice(list(dim.values or []))
        else:
            low, high = float(dim.low or 0.0), float(dim.high or 0.0)  # validated present by SearchDim
            sampler = {"loguniform": tune.loguniform, "uniform": tune.uniform}.get(dim.type)
            out[name] = sampler(low, high) if sampler else tune.randint(int(low), int(high))
    return out


@dataclass(frozen=True)
class TrainingData:
    """Scaled panel and split spans, shipped once to every trial through Ray's object store."""

    scaled: F32
    labels: F32
    train_span: tuple[int, int]
    val_span: tuple[int, int]
    y_scale: float
    max_train_samples: int

    def windows(self, seq_len: int) -> tuple[Windows, Windows]:
        """Training (newest ``max_train_samples``) and validation windows for a sequence length."""
        train = Windows(self.scaled, self.labels, seq_len, self.train_span).newest(self.max_train_samples)
        return train, Windows(self.scaled, self.labels, seq_len, self.val_span)


def _trainable(config: dict[str, Any], data: TrainingData, train: TrainParams, seed: int,
               max_epochs: int) -> None:
    import torch

    torch.set_num_threads(1)
    train_w, val_w = data.windows(int(config["seq_len"]))
    fit(train_w, val_w, {**config, "task": train.task}, max_epochs=max_epochs, batch_size=train.batch_size,
        patience=max_epochs, weight_decay=train.weight_decay, grad_clip=train.grad_clip, y_scale=data.y_scale,
        seed=seed, on_epoch=lambda rec: tune.report({METRIC: rec["val_loss"], "train_loss": rec["train_loss"]}))


@dataclass(frozen=True)
class SearchResult:
    """The best configuration and one record per trial (config, last metrics, epochs run)."""

    best_config: dict[str, Any]
    best_val_loss: float
    trials: list[dict[str, Any]]


@contextmanager
def ray_session(address: str | None, cpus: int) -> Iterator[None]:
    """Ray for one search: the cluster at ``address``, or a local Ray on ``cpus`` CPUs; shut down after."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if address:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    else:
        ray.init(num_cpus=cpus, include_dashboard=False, ignore_reinit_error=True,
                 log_to_driver=False, object_store_memory=512 * 1024 * 1024)
    try:
        yield
    finally:
        ray.shutdown()


def run_search(data: TrainingData, tune_params: TuneParams, train_params: TrainParams, seed: int
               ) -> SearchResult:
    """Run the search on a local Ray (``cpus`` CPUs) or on the cluster at ``tune_params.address``."""
    with ray_session(tune_params.address, tune_params.cpus):
        trainable = tune.with_parameters(_trainable, data=data, train=train_params, seed=seed,
                                         max_epochs=tune_params.max_epochs)
        with tempfile.TemporaryDirectory(prefix="tradepipe-tune-") as storage:
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": 1}),
                param_space=tune_space(tune_params.search_space),
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode="min", num_samples=tune_params.num_samples,
                    search_alg=OptunaSearch(seed=seed),
                    scheduler=ASHAScheduler(max_t=tune_params.max_epochs, grace_period=tune_params.grace_period,
                                            reduction_factor=2),
                    max_concurrent_trials=tune_params.cpus,
                ),
                run_config=tune.RunConfig(name="tune", storage_path=storage, verbose=0),
            )
            grid = tuner.fit()
            trials: list[dict[str, Any]] = []
            for result in (grid[i] for i in range(len(grid))):
                if result.error is not None:
                    raise RuntimeError(f"tuning trial failed: {result.error}")
                history, config, last = result.metrics_dataframe, result.config or {}, result.metrics or {}
                best_loss = float(np.min(history[METRIC])) if history is not None else float(last[METRIC])
                trials.append({"config": dict(config), METRIC: best_loss, "epochs": int(last["training_iteration"])})
    best = min(trials, key=lambda r: float(r[METRIC]))
    return SearchResult(best_config=dict(best["config"]), best_val_loss=float(best[METRIC]), trials=trials)
