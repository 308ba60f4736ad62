"""Independent fits as Ray tasks give, bit for bit, what the same fits give one after another in this process.

A real local Ray (two CPUs, one per task): the predictor's walk-forward refits (CNN-LSTM on real bars) and the
backtest's (window, algorithm, seed) agent fits with the live fit (SAC and PPO on a small synthetic market).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import ray
import torch

from tradepipe.agents.policy import PolicySpec
from tradepipe.backtest.agent_walk_forward import AgentWalkForward, agent_walk_forward
from tradepipe.config import (
    AgentParams,
    BacktestWindowParams,
    FeatureParams,
    ParallelParams,
    Params,
    RiskParams,
    RLParams,
    SplitParams,
    TrainParams,
    WalkForwardParams,
)
from tradepipe.core.market import Market
from tradepipe.core.parallel import IN_PROCESS, SERIAL, Pool, run_tasks
from tradepipe.core.scaler import Scaler
from tradepipe.features import build_features, build_labels, feature_columns
from tradepipe.models.cnn_lstm import CNNLSTM
from tradepipe.models.panel import make_panel
from tradepipe.models.predictor import Predictor
from tradepipe.models.walk_forward import WalkForward, walk_forward_forecasts

FP = FeatureParams(indicators=["rsi_14", "sma_ratio_50"], return_horizons=[1, 5], label_horizon=5)
HP = {"lr": 0.003, "seq_len": 10, "conv_filters": 4, "kernel_size": 3, "lstm_hidden": 4, "dropout": 0.1}
RAY = Pool(backend="ray", cpus=2, cpus_per_task=1)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module (``run_tasks`` joins the one this process started)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 * 1024 * 1024)
    yield
    ray.shutdown()


def _seeded_draw(scale: float) -> tuple[float, int]:
    """What a task draws from the global streams it was seeded with, and its torch threads."""
    return scale * float(np.random.rand() + torch.rand(1).item()), torch.get_num_threads()


def test_each_task_is_seeded_and_threaded_as_told_and_results_keep_input_order(local_ray: None) -> None:
    calls, seeds = [(1.0,), (10.0,), (100.0,)], [3, 4, 3]
    serial = run_tasks(_seeded_draw, calls, seeds, SERIAL)
    parallel = run_tasks(_seeded_draw, calls, seeds, RAY)
    assert [d.value for d in parallel] == [d.value for d in serial]
    assert serial[0].value[0] * 100.0 == serial[2].value[0]  # same seed, same draws
    assert {d.value[1] for d in parallel} == {1}
    assert {d.node for d in serial} == {IN_PROCESS}
    assert {d.node for d in parallel} == {ray.get_runtime_context().get_node_id()}


def _failing(k: int) -> int:
    if k == 1:
        raise ValueError(f"task {k} failed")
    return k


def test_a_failing_task_raises_its_own_exception(local_ray: None) -> None:
    with pytest.raises(ValueError, match="^task 1 failed$"):
        run_tasks(_failing, [(0,), (1,), (2,)], [0, 0, 0], RAY)


def _walk_forward(bars: pd.DataFrame, pool: Pool) -> WalkForward:
    panel = make_panel(build_features(bars, FP), feature_columns(FP), build_labels(bars, 5))
    cfg = TrainParams(max_epochs=1, batch_size=64, patience=1, max_train_samples=1000,
                      walk_forward=WalkForwardParams(start="2012-01-01", refit_years=1))
    return walk_forward_forecasts(panel, HP, cfg, FP, start="2012-01-01", stop=len(panel.timestamps), horizon=5,
                                  epochs=1, seed=5, pool=pool)


def test_walk_forward_refits_on_ray_equal_the_serial_ones_bit_for_bit(bars: pd.DataFrame, local_ray: None) -> None:
    serial, parallel = _walk_forward(bars, SERIAL), _walk_forward(bars, RAY)
    pd.testing.assert_frame_equal(parallel.forecasts, serial.forecasts, check_exact=True)
    assert parallel.forecasts["prediction"].std() > 0
    for a, b in zip(parallel.last.model.state_dict().values(), serial.last.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert parallel.last.forecast_scale == serial.last.forecast_scale
    assert [t["node"] for t in parallel.tasks["tasks"]] == [ray.get_runtime_context().get_node_id()] * 2
    assert serial.tasks["nodes"] == [IN_PROCESS]


DAYS = pd.bdate_range("2014-01-01", "2016-12-31", tz="UTC")


def _market() -> Market:
    rng = np.random.default_rng(11)
    n = len(DAYS)
    return Market(DAYS, ["A", "B", "C"], rng.normal(0.0004, 0.01, (n, 3)),
                  rng.normal(size=(n, 3, 2)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32))


def _agents(params: Params, parallel: ParallelParams) -> tuple[AgentWalkForward, Market]:
    p = params.model_copy(update={
        "seed": 9, "split": SplitParams(train_end="2014-06-30", val_end="2015-06-30", embargo=0),
        "backtest": params.backtest.model_copy(update={"walk_forward": BacktestWindowParams(
            scheme="rolling", train_years=1, test_years=1, warmup_bars=20)}),
        "parallel": parallel})
    rl = RLParams(algos=["sac", "ppo"], seeds=2, total_timesteps=120, episode_length=60,
                  sac=AgentParams(batch_size=16, buffer_size=500, n_envs=2),
                  ppo=AgentParams(n_steps=16, batch_size=16, n_envs=2))
    spec = PolicySpec(["A", "B", "C"], 1, 0.001, risk=RiskParams(target_vol=None, turbulence_quantile=None))
    n = len(feature_columns(FP))  # bundled only: these fits never forecast
    predictor = Predictor(CNNLSTM(n, 4, 3, 4).eval(), {"seq_len": 5, "conv_filters": 4, "lstm_hidden": 4}, FP,
                          Scaler(np.zeros(n, np.float32), np.ones(n, np.float32)), 0.02)
    market = _market()
    return agent_walk_forward(market, spec, predictor, p, rl, market, predictor), market


def test_agent_fits_on_ray_equal_the_serial_ones_bit_for_bit(params: Params, local_ray: None) -> None:
    serial, market = _agents(params, ParallelParams(backend="serial"))
    parallel, _ = _agents(params, ParallelParams(backend="ray", cpus=2))
    assert len(serial.windows) == 2 and list(serial.seed_targets) == [9, 10]
    for seed, targets in serial.seed_targets.items():
        np.testing.assert_array_equal(parallel.seed_targets[seed], targets)
        assert np.abs(targets).sum() > 0
    assert not np.array_equal(serial.seed_targets[9], serial.seed_targets[10])  # seeds are fitted apart
    assert serial.no_forecast is not None and parallel.no_forecast is not None
    np.testing.assert_array_equal(parallel.no_forecast, serial.no_forecast)      # the ablation's fits too
    np.testing.assert_array_equal(parallel.live_policy.targets(market), serial.live_policy.targets(market))
    strip = [{k: v for k, v in fit.items() if k != "nodes"} for fit in serial.fits]
    assert [{k: v for k, v in fit.items() if k != "nodes"} for fit in parallel.fits] == strip
    # (window, seed) fits, the first seed's without the forecast, then the live one
    assert [fit["variant"] for fit in serial.fits] == ["agent"] * 4 + ["no_forecast"] * 2 + ["agent"]
    node = ray.get_runtime_context().get_node_id()
    assert [fit["nodes"] for fit in parallel.fits] == [{"sac": node, "ppo": node}] * 7
    assert [fit["nodes"] for fit in serial.fits] == [{"sac": IN_PROCESS, "ppo": IN_PROCESS}] * 7
