"""register's champion check on a real signed registry: the champion is loaded verified and replayed on the
challenger's bars after its fit end, both Sharpes on the same fills."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlflow
from mlflow import MlflowClient
from pipelines.register import _versus_champion
from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import Params
from tradepipe.core.io import write_parquet
from tradepipe.core.metrics import sharpe_ratio
from tradepipe.paths import BACKTEST_RETURNS
from tradepipe.registry.compare import replay
from tradepipe.registry.versions import AGENT_MODEL, FIT_END_TAG, champion


def test_the_champion_is_replayed_on_the_fresh_bars_and_compared_there(registry: str, tiny_policy: Path,
                                                                        bars: pd.DataFrame, params: Params,
                                                                        tmp_path: Path) -> None:
    mlflow.set_tracking_uri(registry)
    client = MlflowClient()
    current = champion(client, AGENT_MODEL)
    assert current is not None
    days = pd.DatetimeIndex(sorted(bars["timestamp"].unique()))
    challenger = pd.Series(np.random.default_rng(5).normal(0.0005, 0.01, len(days) - 1), index=days[1:])
    table = pd.DataFrame({"timestamp": challenger.index, "agent": challenger.to_numpy()})
    write_parquet(table, tmp_path / BACKTEST_RETURNS)

    assert _versus_champion(client, None, tmp_path, bars, params) is None
    unknown = _versus_champion(client, current, tmp_path, bars, params)   # no fit end: every bar may be in its fit
    assert unknown is not None and unknown.bars == 0 and unknown.check(63)[0]

    client.set_model_version_tag(AGENT_MODEL, current.version, FIT_END_TAG, days[-40].isoformat())
    few = _versus_champion(client, champion(client, AGENT_MODEL), tmp_path, bars, params)
    assert few is not None and few.bars == 39 and "not compared: 39 bars after its fit end" in few.check(63)[1]

    client.set_model_version_tag(AGENT_MODEL, current.version, FIT_END_TAG, days[-121].isoformat())
    result = _versus_champion(client, champion(client, AGENT_MODEL), tmp_path, bars, params)
    assert result is not None and result.bars == 120 and result.start == days[-120]
    replayed = replay(TradingPolicy.load(tiny_policy), bars, days[-121])
    assert result.champion_sharpe == pytest.approx(sharpe_ratio(replayed), rel=1e-9)
    assert result.challenger_sharpe == pytest.approx(sharpe_ratio(challenger.iloc[-120:]), rel=1e-12)
    ok, text, compared = result.check(params.register_.min_compare_bars)
    assert compared and ok == (result.challenger_sharpe > result.champion_sharpe) and "same 120 bars" in text
