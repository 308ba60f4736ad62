"""The gate compares challenger and champion only on identical bars: the champion's span tag must match."""

from __future__ import annotations

import pandas as pd
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag

from pipelines.register import SPAN_TAG, _champion_sharpe, _span
from tradepipe.config import Params
from tradepipe.tuning.ledger import span_key


def _version(**tags: str) -> ModelVersion:
    return ModelVersion("tradepipe-agent", "3", 0, tags=[ModelVersionTag(k, v) for k, v in tags.items()])


def test_the_champion_is_compared_only_on_the_same_span() -> None:
    assert _champion_sharpe(None, "s") == (None, None)
    assert _champion_sharpe(_version(), "s") == (None, None)                      # no figures to compare
    assert _champion_sharpe(_version(oos_sharpe="0.7", **{SPAN_TAG: "s"}), "s") == (0.7, None)
    sharpe, why = _champion_sharpe(_version(oos_sharpe="0.7", **{SPAN_TAG: "old"}), "s")
    assert sharpe is None and why == "champion v3 was tested on other bars (old, not s): not compared"
    assert "span not recorded" in str(_champion_sharpe(_version(oos_sharpe="0.7"), "s")[1])


def test_the_span_is_the_backtests_fill_bars(params: Params) -> None:
    days = pd.bdate_range("2014-12-29", "2015-01-09", tz="UTC")
    bars = pd.DataFrame({"timestamp": list(days) * 2, "symbol": ["B"] * len(days) + ["A"] * len(days)})
    p = params.model_copy(update={"split": params.split.model_copy(update={"val_end": "2014-12-31"})})
    # first test bar 2015-01-01 decides, 2015-01-02 is the first fill
    assert _span(bars, p) == span_key(["A", "B"], days[4], days[-1]) and str(days[4].date()) == "2015-01-02"
