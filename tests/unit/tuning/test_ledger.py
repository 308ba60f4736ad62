"""The trial ledger: one trial per key (the earliest record), the measured variance and SR0, read back from
MLflow per test span, and the forecast strategy the predictor's trials are scored by."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlflow import MlflowClient
from tradepipe.backtest.strategies import top_k_forecast
from tradepipe.core.execution import execute
from tradepipe.core.metrics import EULER_GAMMA, sharpe_ratio
from tradepipe.tuning.ledger import (
    SPAN_TAG,
    Ledger,
    Trial,
    forecast_sharpe,
    read_ledger,
    span_key,
    top_quartile,
    trial_key,
)


def test_a_trial_key_is_its_configuration_not_its_order_or_run() -> None:
    assert trial_key("predictor", {"lr": 0.01, "seq_len": 20}) == trial_key("predictor", {"seq_len": 20, "lr": 0.01})
    assert trial_key("predictor", {"lr": 0.01}) != trial_key("rl_seed", {"lr": 0.01})
    assert trial_key("predictor", {"lr": 0.01}) != trial_key("predictor", {"lr": 0.02})
    assert len(trial_key("pipeline_run", {})) == 16


def test_the_ledger_keeps_the_earliest_record_of_a_key_and_measures_the_variance() -> None:
    earlier = [Trial("predictor", "a", 0.5), Trial("rl_seed", "b", -0.2)]
    mine = [Trial("predictor", "a", 9.0), Trial("pipeline_run", "c", 1.1)]  # "a" rerun: the same trial
    ledger = Ledger.merged(earlier, mine)
    assert [t.val_sharpe for t in ledger.trials] == [0.5, -0.2, 1.1]
    assert ledger.n == 3
    assert ledger.variance == pytest.approx(np.var([0.5, -0.2, 1.1], ddof=1))
    z1, z2 = stats.norm.ppf(1 - 1 / 3), stats.norm.ppf(1 - 1 / (3 * math.e))
    assert ledger.sr0 == pytest.approx(math.sqrt(ledger.variance) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))
    assert ledger.counts() == {"predictor": 1, "rl_tune": 0, "rl_seed": 1, "pipeline_run": 1, "promotion": 0}
    summary = ledger.summary()
    assert (summary["n_trials"], summary["n_predictor"], summary["sr0"]) == (3.0, 1.0, ledger.sr0)


def test_one_trial_or_none_deflates_by_nothing() -> None:
    for ledger in (Ledger(()), Ledger((Trial("pipeline_run", "x", 2.0),))):
        assert (ledger.n, ledger.variance, ledger.sr0) == (1, 0.0, 0.0)


def test_trials_round_trip_through_json_and_refuse_an_unknown_kind() -> None:
    trial = Trial("rl_tune", "k", 0.25)
    assert Trial.from_json(trial.to_json()) == trial
    with pytest.raises(ValueError, match="'seed' is not one of"):
        Trial.from_json({"kind": "seed", "key": "k", "val_sharpe": 1.0})


def test_the_ledger_is_read_back_from_finished_backtest_runs_of_the_same_span(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("ledger", (tmp_path / "art").as_uri())
    days = pd.bdate_range("2015-01-01", "2016-12-30", tz="UTC")
    span = span_key(["B", "A"], days[0], days[-1])
    assert span == span_key(["A", "B"], days[0], days[-1]) and span.startswith("2015-01-01..2016-12-30 2 symbols")

    def backtest_run(tag: str, trials: list[Trial], status: str = "FINISHED") -> None:
        run = client.create_run(experiment, tags={SPAN_TAG: tag})
        for name, value in Ledger(tuple(trials)).mlflow_metrics().items():
            client.log_metric(run.info.run_id, name, value)
        client.log_metric(run.info.run_id, "agent.sharpe", 3.0)  # other metrics are not trials
        client.set_terminated(run.info.run_id, status)

    backtest_run(span, [Trial("predictor", "p1", 0.1), Trial("pipeline_run", "r1", 0.4)])
    backtest_run(span, [Trial("predictor", "p1", 0.7), Trial("pipeline_run", "r2", 0.6)])
    backtest_run(span, [Trial("pipeline_run", "failed", 5.0)], status="FAILED")
    backtest_run(span_key(["A", "B", "C"], days[0], days[-1]), [Trial("pipeline_run", "other", 5.0)])
    ledger = Ledger.merged(read_ledger(client, experiment, span))
    assert {(t.kind, t.key, t.val_sharpe) for t in ledger.trials} == {
        ("predictor", "p1", 0.1), ("pipeline_run", "r1", 0.4), ("pipeline_run", "r2", 0.6)}


def test_the_forecast_strategy_is_the_backtests_top_quartile_executed_with_costs() -> None:
    rng = np.random.default_rng(3)
    forecasts = rng.normal(size=(300, 9))
    forecasts[::7] = -1.0  # no positive forecast: cash
    np.testing.assert_array_equal(top_quartile(forecasts), top_k_forecast(forecasts, 2))
    returns = rng.normal(0.0005, 0.01, (300, 9))
    with_gaps = forecasts.copy()
    with_gaps[5, 3] = np.nan
    expected = sharpe_ratio(pd.Series(execute(top_k_forecast(np.nan_to_num(with_gaps), 2), returns,
                                              0.0015).net_returns[1:]))
    assert forecast_sharpe(with_gaps, returns, 0.0015) == pytest.approx(expected, abs=1e-12)
