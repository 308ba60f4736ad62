"""CNN-LSTM predictor on CPU: training throughput, batch-inference latency and raw-bars-in pyfunc latency.

Run: ``.venv/bin/python benchmarks/predictor_throughput.py [--samples 20000] [--epochs 1] [--seconds 2]``.
The data is the real default run: params.yaml's source (the bundled skfolio 20-stock S&P 500 universe),
features and labels as the features stage builds them, split and scaled as the train stage does. Training
figures time ``fit`` alone (data preparation excluded, its time printed apart) on the newest ``--samples``
windows of the training split, without validation. Latency figures are per call: median and p99 over
repeated calls (at least ``--min-reps``, for about ``--seconds`` each). torch runs with its default thread
count (printed); the machine may be shared, so compare figures taken under the same load.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.models import infer_signature

import mlflow
from tradepipe.config import Params
from tradepipe.data.sources import fetch
from tradepipe.features import build_features, build_labels, feature_columns
from tradepipe.models.panel import Prepared, Windows, make_panel, prepare
from tradepipe.models.predictor import Predictor, PredictorModel
from tradepipe.models.training import fit, predict_windows
from tradepipe.runtime.params import stage_params

ROOT = Path(__file__).resolve().parents[1]
# The largest choice of each model dimension in params.yaml's tune search space, and the smallest.
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {"seq_len": 40, "conv_filters": 32, "kernel_size": 5, "lstm_hidden": 32, "dropout": 0.1,
                "lr": 1e-3},
    "small": {"seq_len": 20, "conv_filters": 16, "kernel_size": 3, "lstm_hidden": 16, "dropout": 0.1,
              "lr": 1e-3},
}


def timed_calls(fn: Callable[[], object], seconds: float, min_reps: int) -> np.ndarray:
    """Seconds per call of ``fn`` after one warm-up call: at least ``min_reps`` calls, for about ``seconds``."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return np.asarray(times)


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


def _ms(times: np.ndarray) -> tuple[float, float]:
    return float(np.median(times) * 1e3), float(np.percentile(times, 99) * 1e3)


def load_prepared(params: Params) -> tuple[pd.DataFrame, Prepared]:
    """Bars of the configured source and its panel, split and scaled as in the train stage."""
    fp = params.features
    bars = fetch(params.data)
    panel = make_panel(build_features(bars, fp), feature_columns(fp), build_labels(bars, fp.label_horizon))
    prep = prepare(panel, params.split.train_end, params.split.val_end, fp.label_horizon, params.split.embargo)
    return bars, prep


def train_rate(prep: Prepared, params: Params, hp: dict[str, Any], samples: int, epochs: int,
               batch_size: int) -> tuple[float, float, int, Any]:
    """Samples/s of ``fit`` over all epochs and in its fastest epoch, the window count and the trained model."""
    windows = Windows(prep.scaled, prep.panel.labels, int(hp["seq_len"]), prep.split.train).newest(samples)
    cfg = params.train
    marks = [time.perf_counter()]
    result = fit(windows, None, hp, max_epochs=epochs, batch_size=batch_size, patience=cfg.patience,
                 weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip, y_scale=prep.y_scale, seed=params.seed,
                 on_epoch=lambda _rec, _best: marks.append(time.perf_counter()))
    marks.append(time.perf_counter())
    overall = epochs * len(windows) / (marks[-1] - marks[0])
    return overall, len(windows) / float(np.min(np.diff(marks[:-1]))), len(windows), result.model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--samples", type=int, default=20_000, help="training windows (newest of the train split)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each timed fit")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch (default: params train)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 20, 512, 4096],
                        help="inference batch sizes (20: one bar of the 20-stock universe)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent on each latency figure")
    parser.add_argument("--min-reps", type=int, default=10, help="fewest timed calls per latency figure")
    parser.add_argument("--bars", type=int, default=260, help="recent bars per symbol in one pyfunc call")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["default", "small"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = stage_params(args.params)
    batch_size = args.batch_size or params.train.batch_size

    start = time.perf_counter()
    bars, prep = load_prepared(params)
    n_sym, n_time, n_feat = prep.panel.features.shape
    print(f"torch {torch.__version__}, CPU, torch.get_num_threads() = {torch.get_num_threads()}, "
          f"os.cpu_count() = {os.cpu_count()}, load average (1 min) {_load()}")
    print(f"data: {params.data.source}, {n_sym} symbols x {n_time} bars x {n_feat} features; "
          f"features + panel + scaling took {time.perf_counter() - start:.1f} s (not timed below)")

    print(f"\ntraining (fit, no validation, batch {batch_size}, {args.epochs} epoch(s)):")
    print(f"  {'config':<52} {'windows':>8} {'samples/s':>10} {'best epoch':>11}")
    models: dict[str, Any] = {}
    for name in args.configs:
        hp = CONFIGS[name]
        rate, best, n, models[name] = train_rate(prep, params, hp, args.samples, args.epochs, batch_size)
        label = (f"{name}: seq {hp['seq_len']}, filters {hp['conv_filters']}, kernel {hp['kernel_size']}, "
                 f"lstm {hp['lstm_hidden']}")
        print(f"  {label:<52} {n:>8,} {rate:>10,.0f} {best:>11,.0f}")

    print("\nbatch inference (predict_windows: window gather + forward, no grad; forward alone apart):")
    print(f"  {'config':<8} {'batch':>6} {'median ms':>10} {'p99 ms':>8} {'samples/s':>10} {'forward ms':>11}")
    for name in args.configs:
        hp, model = CONFIGS[name], models[name]
        pool = Windows(prep.scaled, prep.panel.labels, int(hp["seq_len"]), (0, n_time), need_label=False)
        for b in args.batches:
            sub = copy.copy(pool).newest(b)
            x = torch.from_numpy(sub.batch(np.arange(len(sub)))[0])
            times = timed_calls(partial(predict_windows, model, sub, batch_size=b), args.seconds, args.min_reps)
            with torch.no_grad():
                fwd = timed_calls(partial(model, x), args.seconds / 2, args.min_reps)
            med, p99 = _ms(times)
            print(f"  {name:<8} {len(sub):>6} {med:>10.2f} {p99:>8.2f} {len(sub) / np.median(times):>10,.0f} "
                  f"{np.median(fwd) * 1e3:>11.2f}")

    name = args.configs[0]
    predictor = Predictor(models[name], {**CONFIGS[name], "task": params.train.task}, params.features,
                          prep.scaler, prep.y_scale)
    recent = bars.groupby("symbol").tail(args.bars)
    example = recent.assign(timestamp=recent["timestamp"].astype(str)).reset_index(drop=True)
    in_process = PredictorModel()
    in_process.predictor = predictor
    print(f"\nend to end, raw bars in ({args.bars} bars x {recent['symbol'].nunique()} symbols = {len(example)} rows, "
          f"{name} config), one forecast per symbol out:")
    steps: dict[str, Callable[[], object]] = {
        "build_features alone": lambda: build_features(recent, params.features),
        "PredictorModel.predict (in process)": lambda: in_process.predict(None, example),
    }
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor.save(Path(tmp) / "predictor")
        mlflow.pyfunc.save_model(Path(tmp) / "pyfunc", python_model=PredictorModel(),
                                 artifacts={"predictor": str(Path(tmp) / "predictor")},
                                 signature=infer_signature(example, in_process.predict(None, example)))
        loaded = mlflow.pyfunc.load_model(str(Path(tmp) / "pyfunc"))
        steps["mlflow pyfunc load_model(...).predict"] = lambda: loaded.predict(example)
        print(f"  {'path':<40} {'median ms':>10} {'p99 ms':>8} {'calls':>6}")
        for label, fn in steps.items():
            times = timed_calls(fn, args.seconds, args.min_reps)
            med, p99 = _ms(times)
            print(f"  {label:<40} {med:>10.1f} {p99:>8.1f} {len(times):>6}")
    print(f"\nload average (1 min) at the end: {_load()}; p99 on a shared machine mostly measures the other jobs")


if __name__ == "__main__":
    main()
