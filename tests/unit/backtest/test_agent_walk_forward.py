"""The agent walk-forward lays out its windows from params and names the params to change when it cannot fit; the
no-forecast ablation is walked forward blind to the forecast, beside an agent it leaves unchanged."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
import pytest

from tradepipe.agents.policy import PolicySpec
from tradepipe.backtest.agent_walk_forward import AgentWalkForward, agent_walk_forward, backtest_windows
from tradepipe.config import AgentParams, BacktestWindowParams, ParallelParams, Params, RiskParams, SplitParams
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


def _fitted(params: Params, predictions: np.ndarray, ablation: bool) -> AgentWalkForward:
    """A real, tiny walk-forward (PPO, 64 steps, serial) over random bars: windows 2012-13 and 2014-15."""
    rng = np.random.default_rng(1)
    n = len(DAYS)
    market = Market(DAYS, ["A", "B"], rng.normal(0.0005, 0.01, (n, 2)), rng.normal(size=(n, 2, 2)).astype(np.float32),
                    predictions)
    p = _params(params, train_years=1)
    p = p.model_copy(update={"parallel": ParallelParams(backend="serial"), "backtest": p.backtest.model_copy(
        update={"no_forecast_ablation": ablation})})
    rl = p.rl_train.model_copy(update={"algos": ["ppo"], "seeds": 1, "total_timesteps": 64,
                                       "ppo": AgentParams(n_steps=32, batch_size=16, n_envs=1, net_arch=[8])})
    spec = PolicySpec(["A", "B"], 1, 0.001, risk=RiskParams(max_weight=1.0))   # the cap binds nothing
    return agent_walk_forward(market, spec, cast(Predictor, None), p, rl, market, cast(Predictor, None))


def test_the_no_forecast_ablation_is_walked_forward_blind_to_the_forecast_and_leaves_the_agent_unchanged(
        params: Params) -> None:
    forecasts = np.random.default_rng(2).normal(size=(len(DAYS), 2)).astype(np.float32)
    wf = _fitted(params, forecasts, ablation=True)
    assert [(f["variant"], f["window"]) for f in wf.fits] == [("agent", 1), ("agent", 2), ("no_forecast", 3),
                                                              ("no_forecast", 4), ("agent", 5)]
    assert all("risk_inherited" in f for f in wf.fits[:4]) and "risk_inherited" not in wf.fits[4]
    window = wf.windows[1].test
    moves = np.abs(np.diff(wf.targets[window.start - 1:window.stop], axis=0)).sum(axis=1)
    turnover = cast(dict[str, float], wf.fits[1]["turnover"])
    assert turnover["decided"] == pytest.approx(moves.mean() * 252) and turnover["proposed"] > 0
    assert wf.fits[1]["risk_inherited"] != {"peak_equity": 1.0, "breaker_left": 0.0, "stopped_assets": 0.0,
                                            "invested": 0.0}      # window 2 took over window 1's book and state
    assert wf.no_forecast is not None
    first = wf.windows[0].test.start
    assert np.all(wf.no_forecast[:first] == 0.0) and wf.no_forecast[first:].sum() > 0
    # other forecasts: the agent decides otherwise, the ablation (which never observes them) bit for bit the same
    other = _fitted(params, -forecasts, ablation=True)
    assert other.no_forecast is not None
    np.testing.assert_array_equal(other.no_forecast, wf.no_forecast)
    assert not np.array_equal(other.targets, wf.targets)
    # the ablation's fits are tasks of their own: the agent's book is the same without them
    off = _fitted(params, forecasts, ablation=False)
    assert off.no_forecast is None and [f["variant"] for f in off.fits] == ["agent"] * 3
    np.testing.assert_array_equal(off.targets, wf.targets)
