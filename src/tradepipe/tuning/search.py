"""Ray Tune + OptunaSearch + ASHAScheduler over the CNN-LSTM's hyperparameters.

Each trial reports its validation loss every epoch and, on every new best, a checkpoint of its training state
(``tradepipe.models.training.fit``); a trial Ray restarts (a lost worker) resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray import tune
from ray.tune import Checkpoint
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from tradepipe.config import SearchDim, TrainParams, TuneParams
from tradepipe.core.parallel import Pool, ray_connected
from tradepipe.core.progress import Tracker, progress
from tradepipe.core.types import F32
from tradepipe.models.panel import Windows
from tradepipe.models.training import CHECKPOINT, build_model, fit, predict_windows, to_forecast

METRIC = "val_loss"
Scorer = Callable[[F32], float]  # forecasts over the validation bars (T_val, N symbols; NaN: no sample) -> Sharpe


def _encoded(value: Any) -> Any:
    """A choice value as Optuna can hold it: a list (e.g. conv dilations) or mapping becomes its JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def tune_space(space: dict[str, SearchDim]) -> dict[str, Any]:
    """Translate params.yaml's search space into Ray Tune sampling domains (see :func:`decode_config`)."""
    out: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.type == "choice":
            out[name] = tune.choice([_encoded(v) for v in dim.values or []])
        else:
            low, high = float(dim.low or 0.0), float(dim.high or 0.0)  # validated present by SearchDim
            sampler = {"loguniform": tune.loguniform, "uniform": tune.uniform}.get(dim.type)
            out[name] = sampler(low, high) if sampler else tune.randint(int(low), int(high))
    return out


def decode_config(config: dict[str, Any], space: dict[str, SearchDim]) -> dict[str, Any]:
    """A configuration sampled from :func:`tune_space` with its choice values as params.yaml wrote them."""
    lookup = {name: {_encoded(v): v for v in dim.values or []} for name, dim in space.items() if dim.type == "choice"}
    return {key: lookup[key].get(value, value) if key in lookup else value for key, value in config.items()}


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

    def val_forecasts(self, state: dict[str, Any], hp: dict[str, Any]) -> F32:
        """Forecasts (T_val, N symbols) over the validation bars of the model in checkpoint ``state``; NaN where a
        symbol has no sample."""
        val = Windows(self.scaled, self.labels, int(hp["seq_len"]), self.val_span)
        model = build_model(self.scaled.shape[2], hp)
        model.load_state_dict(state["model"])
        out = np.full((self.val_span[1] - self.val_span[0], self.scaled.shape[0]), np.nan, dtype=np.float32)
        out[val.t - self.val_span[0], val.sym] = to_forecast(predict_windows(model, val), hp["task"], self.y_scale)
        return out


def _trainable(config: dict[str, Any], data: TrainingData, train: TrainParams, space: dict[str, SearchDim],
               seed: int, max_epochs: int) -> None:
    torch.set_num_threads(1)
    hp = {**decode_config(config, space), "task": train.task}
    train_w, val_w = data.windows(int(hp["seq_len"]))
    with tempfile.TemporaryDirectory(prefix="tradepipe-trial-") as local:
        restored = tune.get_checkpoint()
        if restored is not None:
            with restored.as_directory() as saved:
                shutil.copytree(saved, local, dirs_exist_ok=True)

        def report(record: dict[str, float], improved: bool) -> None:
            tune.report({METRIC: record["val_loss"], "train_loss": record["train_loss"]},
                        checkpoint=Checkpoint.from_directory(local) if improved else None)

        fit(train_w, val_w, hp, max_epochs=max_epochs, batch_size=train.batch_size, patience=max_epochs,
            weight_decay=train.weight_decay, grad_clip=train.grad_clip, y_scale=data.y_scale, seed=seed,
            on_epoch=report, checkpoint_dir=Path(local))


@dataclass(frozen=True)
class SearchResult:
    """The best configuration, one record per trial (config, best validation loss, epochs run, epoch of the best
    checkpoint, validation loss per epoch) and the names of the search algorithm and scheduler used."""

    best_config: dict[str, Any]
    best_val_loss: float
    trials: list[dict[str, Any]]
    search_alg: str
    scheduler: str


class TrialProgress(tune.Callback):
    """Ray Tune callback (it runs in the driver): trials done of the tracker's total, best ``metric`` so far."""

    def __init__(self, tracker: Tracker, metric: str, mode: str) -> None:
        self.tracker, self.metric, self.sign = tracker, metric, 1.0 if mode == "min" else -1.0
        self.best: float | None = None

    def __getstate__(self) -> dict[str, Any]:  # Tuner pickles its run config: the tracker stays in this process
        return {**self.__dict__, "tracker": None}

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        value = result.get(self.metric)
        if isinstance(value, int | float) and (self.best is None or self.sign * value < self.sign * self.best):
            self.best = float(value)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self.tracker is not None:
            best = "" if self.best is None else f"best {self.metric} {self.best:.6g}"
            self.tracker.advance(note=best)

    on_trial_error = on_trial_complete


def run_search(data: TrainingData, tune_params: TuneParams, train_params: TrainParams, seed: int,
               score: Scorer | None = None) -> SearchResult:
    """Run the search on a local Ray (``cpus`` CPUs) or on the cluster at ``tune_params.address``; the best
    configuration is the trial with the lowest validation loss of any epoch. With ``score``, each trial's record
    also holds ``val_sharpe``: ``score`` of its best checkpoint's forecasts over the validation bars."""
    space = tune_params.search_space
    search_alg = OptunaSearch(seed=seed)
    scheduler = ASHAScheduler(max_t=tune_params.max_epochs, grace_period=tune_params.grace_period, reduction_factor=2)
    with ray_connected(Pool(address=tune_params.address, cpus=tune_params.cpus)):
        trainable = tune.with_parameters(_trainable, data=data, train=train_params, space=space, seed=seed,
                                         max_epochs=tune_params.max_epochs)
        with (tempfile.TemporaryDirectory(prefix="tradepipe-tune-") as storage,
              progress("tune trials", tune_params.num_samples) as tracker):
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": 1}),
                param_space=tune_space(space),
                tune_config=tune.TuneConfig(metric=METRIC, mode="min", num_samples=tune_params.num_samples,
                                            search_alg=search_alg, scheduler=scheduler,
                                            max_concurrent_trials=tune_params.cpus),
                run_config=tune.RunConfig(
                    name="tune", storage_path=storage, verbose=0, callbacks=[TrialProgress(tracker, METRIC, "min")],
                    failure_config=tune.FailureConfig(max_failures=1)),
            )
            grid = tuner.fit()
            trials: list[dict[str, Any]] = []
            for result in (grid[i] for i in range(len(grid))):
                if result.error is not None:
                    raise RuntimeError(f"tuning trial failed: {result.error}")
                if result.checkpoint is None or result.metrics_dataframe is None:
                    raise RuntimeError(f"tuning trial {result.path} reported no checkpoint or no metrics")
                with result.checkpoint.as_directory() as saved:  # the latest, saved on the last improvement
                    state = torch.load(Path(saved) / CHECKPOINT, weights_only=True)
                config = decode_config(dict(result.config or {}), space)
                # one row per epoch (a restored trial re-reports the epochs after its checkpoint: keep the last)
                rows = result.metrics_dataframe.drop_duplicates("training_iteration", keep="last")
                losses = [float(v) for v in rows.sort_values("training_iteration")[METRIC]]
                trials.append({"config": config, METRIC: min(losses), "epochs": len(losses),
                               "best_epoch": int(state["epoch"]), "history": losses,
                               **({} if score is None else {"val_sharpe": score(
                                   data.val_forecasts(state, {**config, "task": train_params.task}))})})
    best = min(trials, key=lambda r: float(r[METRIC]))
    return SearchResult(best_config=dict(best["config"]), best_val_loss=float(best[METRIC]), trials=trials,
                        search_alg=type(search_alg).__name__, scheduler=type(scheduler).__name__)
