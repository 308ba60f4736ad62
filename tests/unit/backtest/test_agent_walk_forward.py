"""The agent walk-forward lays out its windows from params and names the params to change when it cannot fit."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
import pytest

from tradepipe.agents.policy import PolicySpec
from tradepipe.backtest.agent_walk_forward import agent_walk_forward, backtest_windows
from tradepipe.config import BacktestWindowParams, Params, SplitParams
from tradepipe.core.market import Market
from tradepipe.models.predictor import Predictor

DAYS = pd.bdate_range("2010-01-01", "2015-12-31", tz="UTC")


def _params(params: Params, train_years: int, val_end: str = "2011-12-31") -> Params:
    split = SplitParams(train_end="2010-06-30", val_end=val_end, embargo=2)
    backtest = params.backtest.model_copy(
        update={"walk_forward": BacktestWindowParams(scheme="rolling", train_years=train_years, test_years=2)})
    return params.model_copy(update={"split": split, "backtest": backtest})


def test_windows_test_from_the_day_after_val_end_and_purge_horizon_plus_embargo(params: Params) -> None:
    p = _params(params, train_years=1)
    windows = backtest_windows(DAYS, p)
    assert windows[0].test.start == DAYS.searchsorted(pd.Timestamp("2012-01-01", tz="UTC"))
    assert [DAYS[w.test.start].year for w in windows] == [2012, 2014]
    assert all(w.train.stop == w.test.start - p.features.label_horizon - 2 for w in windows)


def test_windows_name_the_params_section_when_nothing_is_left_to_test(params: Params) -> None:
    with pytest.raises(ValueError, match=r"^params.yaml backtest.walk_forward: no bars after 2016-01-01"):
        backtest_windows(DAYS, _params(params, train_years=1, val_end="2015-12-31"))


def test_a_window_too_short_to_train_and_validate_fails_before_any_fit(params: Params) -> None:
    rng = np.random.default_rng(0)
    market = Market(DAYS[:700], ["A", "B"], rng.normal(0, 0.01, (700, 2)),
                    np.zeros((700, 2, 1), np.float32), np.zeros((700, 2), np.float32))
    p = _params(params, train_years=1, val_end="2010-02-28")
    p = p.model_copy(update={"split": p.split.model_copy(update={"train_end": "2010-01-31"})})
    fits: list[int] = []
    rl = p.rl_train.model_copy(update={"validation_fraction": 0.5, "lookback": 40})
    with pytest.raises(ValueError, match="walk-forward window train 2010-01-01.*lengthen backtest.walk_forward"):
        agent_walk_forward(market, PolicySpec(["A", "B"], 40, 0.001), cast(Predictor, None), p, rl, market,
                           cast(Predictor, None), on_fit=lambda k, _m: fits.append(k))
    assert fits == []
