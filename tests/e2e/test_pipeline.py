"""`tradepipe run --profile smoke`: every stage for real as a DVC experiment, tracked in MLflow, registered."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import mlflow
from tests.fixtures.project import client, run
from tradepipe.core.metrics import sharpe_ratio
from tradepipe.runtime.stages import STAGE_NAMES

pytestmark = pytest.mark.e2e


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_smoke_pipeline_end_to_end(project: Path) -> None:
    params_before = (project / "params.yaml").read_bytes()
    first = run(["tradepipe", "run", "--profile", "smoke", "--name", "e2e-smoke"], project,
                TRADEPIPE_RUN_ID="e2e-run-1")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    order = [first.stdout.find(f"Running stage '{s}'") for s in STAGE_NAMES]
    assert all(i >= 0 for i in order) and order == sorted(order)

    # a DVC experiment: the workspace kept its params and has no outputs; the experiment holds the smoke params
    assert (project / "params.yaml").read_bytes() == params_before
    assert not (project / "metrics" / "backtest.json").exists()
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    (exp,) = [r for b in shown for e in b.get("experiments") or [] for r in e["revs"] if r["name"] == "e2e-smoke"]
    assert exp["data"]["params"]["params.yaml"]["data"]["data"]["symbols"] == ["AAPL", "AMD", "JPM", "KO", "XOM"]
    applied = run(["dvc", "exp", "apply", "e2e-smoke"], project)
    assert applied.returncode == 0, applied.stderr[-2000:]

    # metrics for every stage; the backtest holds real numbers for the agent and the 1/N benchmark
    for stage in STAGE_NAMES:
        assert (project / "metrics" / f"{stage}.json").exists(), stage
    backtest = json.loads((project / "metrics" / "backtest.json").read_text())
    for key in ("agent.sharpe", "agent.max_drawdown", "agent.total_return", "equal_weight_daily.sharpe"):
        assert np.isfinite(backtest[key])
    assert 0.0 <= backtest["agent.max_drawdown"] < 1.0
    html = (project / "reports" / "backtest" / "report.html").read_text()
    assert "survivorship" in html.lower()
    assert "How much to believe this" in html

    # the backtest's wiring: the strategy set, every run on the same bars, the trial ledger's count
    returns = pd.read_parquet(project / "data" / "backtest" / "returns.parquet").set_index("timestamp")
    strategies = ["agent", "agent_fixed", "agent_no_forecast", "equal_weight_risk_managed", "forecast_risk_managed",
                  "forecast_top_quartile", "equal_weight_daily", "equal_weight_monthly"]
    assert list(returns.columns[:len(strategies)]) == strategies and returns.notna().all().all()
    assert returns.index.is_unique and returns.index.is_monotonic_increasing
    assert {c for c in returns.columns if c.startswith("buy_and_hold_")} and len(returns.columns) == len(
        strategies) + 4 + 1                                              # + the refitted benchmarks, the index
    # the holdout: the last year (2018), measured apart; the main figures stop before it
    assert backtest["holdout.bars"] == float((returns.index >= pd.Timestamp("2018-01-01", tz="UTC")).sum()) > 200
    for name in ("agent", "equal_weight_daily"):
        assert backtest[f"holdout.{name}.sharpe"] == pytest.approx(sharpe_ratio(returns[name].loc["2018":]))
        assert backtest[f"{name}.sharpe"] == pytest.approx(sharpe_ratio(returns[name].loc[:"2017"]))
    assert "<h2>Holdout</h2>" in html and "Primary benchmark: equal_weight_daily" in html
    # smoke ledger: 2 predictor trials + sac and ppo with 1 seed + this pipeline run
    assert (backtest["ledger.n_trials"], backtest["ledger.n_predictor"], backtest["ledger.n_rl_seed"],
            backtest["ledger.n_pipeline_run"], backtest["ledger.n_promotion"], backtest["seeds.n"]
            ) == (5, 2, 2, 1, 0, 1)
    assert backtest["ledger.sharpe_variance"] > 0 and backtest["ledger.sr0"] > 0
    assert "agent.dsr" in backtest and "equal_weight_daily.dsr" not in backtest and "equal_weight_daily.psr" in backtest
    # the ablation without the forecast: reported (PSR only), no ledger trial (N above counts none for it)
    assert np.isfinite(backtest["agent_no_forecast.sharpe"]) and "agent_no_forecast.dsr" not in backtest
    assert "Does the predictor help?" in html and "agent_no_forecast (ablation" in html
    # train ran the epoch count tune selected before the RL window, without early stopping on it
    best_config = json.loads((project / "models" / "tune" / "best_config.json").read_text())
    train_json = json.loads((project / "metrics" / "train.json").read_text())
    assert best_config["selection_window"] == ["2015-06-30", "2015-12-31"]
    assert train_json["best_epoch"] == float(min(best_config["best_epoch"], 2))

    # one MLflow run per stage, all finished and sharing the pipeline run id
    mlc = client(project)
    exp = mlc.get_experiment_by_name("tradepipe")
    runs = mlc.search_runs([exp.experiment_id], "tags.`tradepipe.pipeline_run_id` = 'e2e-run-1'")
    by_stage = {r.data.tags["tradepipe.runtime.stage"]: r for r in runs if "tradepipe.runtime.stage" in r.data.tags}
    assert sorted(by_stage) == sorted(STAGE_NAMES)
    assert all(r.info.status == "FINISHED" for r in by_stage.values())
    assert by_stage["backtest"].data.metrics["agent.sharpe"] == pytest.approx(backtest["agent.sharpe"])
    trials = mlc.search_runs([exp.experiment_id],
                             f"tags.`mlflow.parentRunId` = '{by_stage['tune'].info.run_id}'")
    assert len(trials) == 2

    # the registry: agent and predictor versions, champion alias, and the champion serves weights
    decision = json.loads((project / "reports" / "register.json").read_text())
    assert decision["promoted"] is True
    for name in ("tradepipe-agent", "tradepipe-predictor"):
        assert str(mlc.get_model_version_by_alias(name, "champion").version) == "1"
    agent = mlc.get_model_version_by_alias("tradepipe-agent", "champion")
    assert "loads and predicts a valid book in a fresh process" in agent.description
    assert float(agent.tags["oos_dsr"]) == pytest.approx(backtest["agent.dsr"], abs=1e-6)
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    bars_md5 = next(o["md5"] for o in lock["ingest"]["outs"] if o["path"] == "data/raw/bars.parquet")
    assert agent.tags["dvc.data/raw/bars.parquet"] == bars_md5 and len(agent.tags["git_commit"]) == 40
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/tradepipe-agent@champion")
    bars = pd.read_parquet(project / "data" / "raw" / "bars.parquet").groupby("symbol").tail(260)
    weights = model.predict(bars.assign(timestamp=bars["timestamp"].astype(str)))
    assert weights["weight"].sum() == pytest.approx(1.0) and (weights["weight"] >= 0).all()

    # nothing changed: a second repro runs no stage
    second = run(["dvc", "repro"], project)
    assert second.returncode == 0 and "Running stage" not in second.stdout

    # same params and seed give the same metrics
    train_metrics = (project / "metrics" / "train.json").read_text()
    again = run(["dvc", "repro", "--force", "--single-item", "train"], project)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (project / "metrics" / "train.json").read_text() == train_metrics
    # ... and the same backtest: the rerun reads back its own trials from the ledger and counts register's
    # promotion attempt (one more trial, N 6); every figure but the deflation is the same
    again = run(["dvc", "repro", "--force", "--single-item", "backtest"], project)
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads((project / "metrics" / "backtest.json").read_text())
    assert (rerun["ledger.n_trials"], rerun["ledger.n_promotion"]) == (6, 1)
    ledger_bound = {k for k in backtest if k.startswith("ledger.") or k.endswith(".dsr")}
    assert {k: v for k, v in rerun.items() if k not in ledger_bound} == {
        k: v for k, v in backtest.items() if k not in ledger_bound}
    backtest_metrics = (project / "metrics" / "backtest.json").read_text()
    again = run(["dvc", "repro", "--force", "--single-item", "backtest"], project)   # nothing new: N stays 6
    assert again.returncode == 0, again.stderr[-2000:]
    assert (project / "metrics" / "backtest.json").read_text() == backtest_metrics

    # bad data: the validation gate stops the run; nothing downstream runs, outputs and registry untouched
    features = project / "data" / "features" / "features.parquet"
    before = _digest(features)
    params = (project / "params.yaml").read_text().replace("max_abs_return: 0.7", "max_abs_return: 0.01")
    (project / "params.yaml").write_text(params)
    bad = run(["dvc", "repro"], project)
    assert bad.returncode != 0
    assert "abs_return" in bad.stderr + bad.stdout
    assert "Running stage 'features'" not in bad.stdout
    assert _digest(features) == before
    assert len(mlc.search_model_versions("name='tradepipe-agent'")) == 1
