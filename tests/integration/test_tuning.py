"""The predictor search for real: the tune stage's Ray Tune + Optuna + ASHA run on a small bundled panel, trials
nested under the stage's MLflow run, the best configuration written and reloadable."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

import mlflow
from pipelines.tune import tune
from tests import ROOT
from tradepipe.config import Params, SearchDim
from tradepipe.core.io import write_parquet
from tradepipe.features import build_features, build_labels, feature_columns
from tradepipe.models.training import build_model
from tradepipe.paths import BEST_CONFIG, FEATURES, LABELS
from tradepipe.tuning.search import decode_config, tune_space

DILATIONS = [[1, 2], [1, 2, 4]]


def test_list_choices_reach_optuna_as_text_and_come_back_as_lists() -> None:
    space = {"dilations": SearchDim(type="choice", values=DILATIONS),
             "attention": SearchDim(type="choice", values=[False, True])}
    domains = tune_space(space)
    assert domains["dilations"].categories == ["[1, 2]", "[1, 2, 4]"]      # Optuna stores only scalars
    assert decode_config({"dilations": "[1, 2, 4]", "attention": True, "lr": 0.01}, space) == {
        "dilations": [1, 2, 4], "attention": True, "lr": 0.01}


def _params() -> Params:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update(start="2010-01-01", end="2013-12-31")
    raw["split"].update(select_end="2011-06-30", train_end="2011-12-31", val_end="2012-12-31")
    raw["features"].update(indicators=["rsi_14", "sma_ratio_50"], ohlcv_indicators=[], return_horizons=[1, 5],
                           ranks=[], label_horizon=5)
    raw["tune"] = {"num_samples": 3, "max_epochs": 3, "grace_period": 1, "cpus": 2, "address": None,
                   "search_space": {"lr": {"type": "loguniform", "low": 0.0005, "high": 0.01},
                                    "seq_len": {"type": "choice", "values": [5, 10]},
                                    "conv_filters": {"type": "choice", "values": [4]},
                                    "lstm_hidden": {"type": "choice", "values": [4, 8]},
                                    "lstm_layers": {"type": "choice", "values": [1, 2]},
                                    "dilations": {"type": "choice", "values": DILATIONS}}}
    raw["train"].update(batch_size=256, max_train_samples=1500)
    return Params.model_validate(raw)


def test_tune_stage_runs_nested_trials_and_keeps_the_argmin(bars: pd.DataFrame, tmp_path: Path) -> None:
    params = _params()
    write_parquet(build_features(bars, params.features), tmp_path / FEATURES)
    write_parquet(build_labels(bars, params.features.label_horizon), tmp_path / LABELS)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("tune-test", (tmp_path / "art").as_uri()))

    with mlflow.start_run(run_name="tune") as parent:
        metrics = tune(params, tmp_path)

    client = mlflow.MlflowClient()
    tags = client.get_run(parent.info.run_id).data.tags
    assert (tags["tune.search_alg"], tags["tune.scheduler"]) == ("OptunaSearch", "AsyncHyperBandScheduler")  # ASHA
    trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(trials) == params.tune.num_samples == metrics["n_trials"]
    configs = {json.dumps(t.data.params, sort_keys=True) for t in trials}
    assert len(configs) == len(trials)                                   # each trial its own configuration
    for trial in trials:
        per_epoch = [m.value for m in sorted(client.get_metric_history(trial.info.run_id, "epoch_val_loss"),
                                             key=lambda m: m.step)]
        assert 1 <= len(per_epoch) == trial.data.metrics["epochs"] <= params.tune.max_epochs   # ASHA's max_t
        assert trial.data.metrics["val_loss"] == min(per_epoch)
        # the checkpoint Ray kept is the trial's best epoch
        assert trial.data.metrics["best_epoch"] == per_epoch.index(min(per_epoch)) + 1

    saved = json.loads((tmp_path / BEST_CONFIG).read_text())
    winner = min(trials, key=lambda t: t.data.metrics["val_loss"])
    assert saved["n_trials"] == len(trials)
    assert saved["val_loss"] == metrics["best_val_loss"] == winner.data.metrics["val_loss"]
    # selected on (select_end, train_end], before the RL window; the epoch count chosen there is the winner's
    assert saved["selection_window"] == ["2011-06-30", "2011-12-31"]
    assert saved["best_epoch"] == metrics["best_epoch"] == winner.data.metrics["best_epoch"]
    assert {k: str(v) for k, v in saved["config"].items()} == winner.data.params
    # every trial is a ledger trial: its forecast strategy's validation Sharpe, under a key of its configuration
    assert [t["kind"] for t in saved["trials"]] == ["predictor"] * len(trials)
    assert len({t["key"] for t in saved["trials"]}) == len(trials)
    assert sorted(t["val_sharpe"] for t in saved["trials"]) == sorted(t.data.metrics["val_sharpe"] for t in trials)
    assert len({round(t["val_sharpe"], 12) for t in saved["trials"]}) > 1      # different models trade differently
    assert saved["config"]["dilations"] in DILATIONS                     # a list again after the JSON round trip
    model = build_model(len(feature_columns(params.features)), saved["config"])
    assert [layer.conv.dilation[0] for layer in model.convs] == saved["config"]["dilations"]
    assert model.lstm.num_layers == saved["config"]["lstm_layers"]
