"""The predictor trains reproducibly, round-trips through disk, and forecasts without look-ahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests import ROOT
from tradepipe.config import FeatureParams
from tradepipe.features import build_features, build_labels, feature_columns
from tradepipe.models.cnn_lstm import CNNLSTM
from tradepipe.models.panel import Windows, make_panel, prepare
from tradepipe.models.predictor import Predictor
from tradepipe.models.training import fit

FP = FeatureParams(indicators=["rsi_14", "sma_ratio_50", "macd_hist"], return_horizons=[1, 5], label_horizon=5)
HP = {"lr": 0.003, "seq_len": 10, "conv_filters": 8, "kernel_size": 3, "lstm_hidden": 8, "dropout": 0.1}


@pytest.fixture(scope="module")
def trained(bars: pd.DataFrame):
    panel = make_panel(build_features(bars, FP), feature_columns(FP), build_labels(bars, 5))
    prep = prepare(panel, "2011-12-31", "2012-12-31", 5)
    train = Windows(prep.scaled, panel.labels, 10, prep.split.train)
    val = Windows(prep.scaled, panel.labels, 10, prep.split.val)

    def run():
        return fit(train, val, HP, max_epochs=3, batch_size=128, patience=3, weight_decay=0.0, grad_clip=1.0,
                   y_scale=prep.y_scale, seed=7)

    return prep, run(), run()


def test_same_seed_same_model(trained) -> None:
    _, a, b = trained
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert a.history[0]["train_loss"] > a.history[-1]["train_loss"]


@pytest.mark.parametrize("dilations", [(1, 2), (1, 2, 4)])
def test_causal_convolution_ignores_later_steps(dilations: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = CNNLSTM(3, conv_filters=4, kernel_size=3, lstm_hidden=4, dilations=dilations).eval()
    assert [layer.conv.dilation[0] for layer in net.convs] == list(dilations)
    x = torch.randn(2, 3, 20)
    y = x.clone()
    y[:, :, 8:] += 5.0
    with torch.no_grad():
        torch.testing.assert_close(net.convs(x)[:, :, :8], net.convs(y)[:, :, :8])
        # ... while the receptive field grows with the stack: 1 + (kernel - 1) * sum(dilations) steps
        field = 1 + 2 * sum(dilations)
        z = x.clone()
        z[:, :, 19 - field] += 5.0
        torch.testing.assert_close(net.convs(x)[:, :, 19], net.convs(z)[:, :, 19])
        z[:, :, 20 - field] += 5.0
        assert not torch.allclose(net.convs(x)[:, :, 19], net.convs(z)[:, :, 19])


def test_bad_dilations_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="dilations must be a non-empty list of positive integers"):
        CNNLSTM(3, dilations=[1, 0])


def test_deeper_predictor_reloads_with_its_architecture(trained, bars: pd.DataFrame, tmp_path: Path) -> None:
    prep, _, _ = trained
    hp = {**HP, "dilations": [1, 2, 4], "lstm_layers": 2}
    train = Windows(prep.scaled, prep.panel.labels, 10, prep.split.train)
    result = fit(train, None, hp, max_epochs=1, batch_size=256, patience=1, weight_decay=0.0, grad_clip=1.0,
                 y_scale=prep.y_scale, seed=3)
    predictor = Predictor(result.model, hp, FP, prep.scaler, prep.y_scale)
    predictor.save(tmp_path / "deep")
    loaded = Predictor.load(tmp_path / "deep")
    assert [layer.conv.dilation[0] for layer in loaded.model.convs] == [1, 2, 4]
    assert loaded.model.lstm.num_layers == 2
    pd.testing.assert_frame_equal(loaded.predict_bars(bars), predictor.predict_bars(bars))


def test_predictor_roundtrip_and_no_lookahead(trained, bars: pd.DataFrame, tmp_path: Path) -> None:
    prep, result, _ = trained
    predictor = Predictor(result.model, HP, FP, prep.scaler, prep.y_scale)
    predictor.save(tmp_path / "p")
    loaded = Predictor.load(tmp_path / "p")
    full = loaded.predict_bars(bars)
    pd.testing.assert_frame_equal(full, predictor.predict_bars(bars))
    cut = bars["timestamp"].drop_duplicates().sort_values().iloc[700]
    past = loaded.predict_bars(bars[bars["timestamp"] <= cut])
    expected = full[full["timestamp"] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(past, expected, check_exact=False, rtol=1e-5)
    assert full["prediction"].std() > 0
    # the pyfunc's live path forecasts only each symbol's last window, with the same values
    ragged = bars[(bars["symbol"] != bars["symbol"].iloc[0]) | (bars["timestamp"] <= cut)]  # one symbol ends early
    every = loaded.predict_bars(ragged)
    last = every.sort_values("timestamp").groupby("symbol").tail(1).sort_values(["timestamp", "symbol"])
    pd.testing.assert_frame_equal(loaded.predict_bars(ragged, latest_only=True).sort_values(["timestamp", "symbol"])
                                  .reset_index(drop=True), last.reset_index(drop=True), rtol=1e-5)


def test_resuming_from_a_checkpoint_ends_like_an_uninterrupted_run(trained, tmp_path: Path) -> None:
    prep, _, _ = trained
    train = Windows(prep.scaled, prep.panel.labels, 10, prep.split.train).newest(3000)
    val = Windows(prep.scaled, prep.panel.labels, 10, prep.split.val)

    def run(checkpoint_dir: Path | None, on_epoch=None):
        return fit(train, val, HP, max_epochs=4, batch_size=128, patience=4, weight_decay=0.01, grad_clip=1.0,
                   y_scale=prep.y_scale, seed=11, on_epoch=on_epoch, checkpoint_dir=checkpoint_dir)

    class Interrupted(Exception):
        pass

    def stop_after_two(record: dict[str, float], improved: bool) -> None:
        if record["epoch"] == 2:
            raise Interrupted

    uninterrupted = run(None)
    with pytest.raises(Interrupted):
        run(tmp_path, stop_after_two)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    best_so_far = min(uninterrupted.history[:2], key=lambda r: r["val_loss"])
    assert saved["epoch"] == best_so_far["epoch"] and saved["best_val_loss"] == best_so_far["val_loss"]
    replayed: list[float] = []
    resumed = run(tmp_path, lambda record, improved: replayed.append(record["epoch"]))
    assert replayed == list(range(saved["epoch"] + 1, 5))          # resumed, not restarted
    assert resumed.history == uninterrupted.history
    assert resumed.best_epoch == uninterrupted.best_epoch
    for a, b in zip(resumed.model.parameters(), uninterrupted.model.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="belongs to another training run"):
        fit(train, val, {**HP, "lr": 0.01}, max_epochs=4, batch_size=128, patience=4, weight_decay=0.01,
            grad_clip=1.0, y_scale=prep.y_scale, seed=11, checkpoint_dir=tmp_path)


def test_classification_head_with_attention_learns_probabilities(trained, bars: pd.DataFrame) -> None:
    prep, _, _ = trained
    panel = prep.panel
    hp = {**HP, "task": "classification", "attention": True}
    train = Windows(prep.scaled, panel.labels, 10, prep.split.train)
    val = Windows(prep.scaled, panel.labels, 10, prep.split.val)
    result = fit(train, val, hp, max_epochs=2, batch_size=128, patience=2, weight_decay=0.0, grad_clip=1.0,
                 y_scale=prep.y_scale, seed=7)
    assert result.model.pool is not None
    edge = Predictor(result.model, hp, FP, prep.scaler, prep.y_scale).predict_bars(bars)["prediction"]
    assert edge.between(-0.5, 0.5).all() and edge.std() > 0
    assert result.history[0]["val_loss"] < 1.0          # binary cross-entropy, near log(2) for a weak model


def test_walk_forward_forecasts_never_see_their_block(bars: pd.DataFrame) -> None:
    from tradepipe.config import TrainParams, WalkForwardParams
    from tradepipe.models.walk_forward import walk_forward_forecasts

    panel = make_panel(build_features(bars, FP), feature_columns(FP), build_labels(bars, 5))
    cfg = TrainParams(max_epochs=1, batch_size=64, patience=1, max_train_samples=2000,
                      walk_forward=WalkForwardParams(start="2012-01-01", refit_years=1))
    stop = int(panel.timestamps.searchsorted(pd.Timestamp("2013-06-30", tz="UTC")))
    base = walk_forward_forecasts(panel, HP, cfg, FP, start="2012-01-01", stop=stop, horizon=5, epochs=1,
                                  seed=1).forecasts
    assert base["timestamp"].min() >= pd.Timestamp("2012-01-01", tz="UTC")
    assert base["timestamp"].max() < panel.timestamps[stop]
    # scramble every label and feature from 2013 on: forecasts for 2012 must not move
    cut = int(panel.timestamps.searchsorted(pd.Timestamp("2013-01-01", tz="UTC")))
    features, labels = panel.features.copy(), panel.labels.copy()
    features[:, cut:] = np.random.default_rng(0).normal(size=features[:, cut:].shape)
    labels[:, cut - 5:] = 0.5
    changed = walk_forward_forecasts(type(panel)(panel.timestamps, panel.symbols, features, labels), HP, cfg, FP,
                                     start="2012-01-01", stop=stop, horizon=5, epochs=1, seed=1).forecasts
    early = base["timestamp"] < panel.timestamps[cut]
    pd.testing.assert_frame_equal(base[early], changed[changed["timestamp"] < panel.timestamps[cut]])
    assert not np.allclose(base[~early]["prediction"], changed[~early.to_numpy()]["prediction"])


def test_last_walk_forward_refit_is_a_complete_predictor_of_the_latest_forecasts(bars: pd.DataFrame,
                                                                                 tmp_path: Path) -> None:
    from tradepipe.config import TrainParams, WalkForwardParams
    from tradepipe.core.scaler import Scaler
    from tradepipe.models.walk_forward import walk_forward_forecasts

    panel = make_panel(build_features(bars, FP), feature_columns(FP), build_labels(bars, 5))
    cfg = TrainParams(max_epochs=1, batch_size=64, patience=1, max_train_samples=2000,
                      walk_forward=WalkForwardParams(start="2012-01-01", refit_years=1))
    wf = walk_forward_forecasts(panel, HP, cfg, FP, start="2012-01-01", stop=len(panel.timestamps), horizon=5,
                                epochs=1, seed=1)
    assert [t.year for t in wf.refits] == [2012, 2013]
    last_start = int(panel.timestamps.searchsorted(wf.refits[-1]))
    expected = Scaler.fit(panel.features, last_start - 5)          # its own scaler: fitted up to its block only
    np.testing.assert_array_equal(wf.last.scaler.mean, expected.mean)
    assert wf.last.y_scale == pytest.approx(float(np.nanstd(panel.labels[:, :last_start - 5])))
    assert wf.last.forecast_scale > 0 and wf.last.forecast_scale != 1.0
    wf.last.save(tmp_path / "live")
    served = Predictor.load(tmp_path / "live").predict_bars(bars)
    latest = wf.forecasts[wf.forecasts["timestamp"] >= wf.refits[-1]].reset_index(drop=True)
    served = served[served["timestamp"] >= wf.refits[-1]].sort_values(["timestamp", "symbol"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(served, latest.sort_values(["timestamp", "symbol"]).reset_index(drop=True),
                                  check_exact=False, rtol=1e-5)


def test_walk_forward_start_must_cover_the_first_bar_after_the_training_split() -> None:
    from tradepipe.models.walk_forward import check_covers

    days = pd.bdate_range("2010-12-01", "2011-02-28", tz="UTC")
    for start in ("2003-01-01", "2011-01-01", "2011-01-03"):     # 2011-01-03: the first bar after 2010-12-31
        check_covers(days, start, after="2010-12-31")
    with pytest.raises(ValueError, match="after 2011-01-03, the first bar after 2010-12-31"):
        check_covers(days, "2011-01-04", after="2010-12-31")


@pytest.mark.parametrize("profile", [None, "smoke"])
def test_predictor_refits_line_up_with_the_backtest_slices(profile: str | None, tmp_path: Path) -> None:
    import shutil

    from tradepipe.backtest.walk_forward import live_window, walk_forward_windows
    from tradepipe.config import load_params
    from tradepipe.models.walk_forward import block_starts, check_covers
    from tradepipe.runtime.profiles import apply_profile, load_profile

    root = ROOT
    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    if profile:
        apply_profile(tmp_path / "params.yaml", load_profile(root, profile))
    params = load_params(tmp_path / "params.yaml")
    days = pd.bdate_range(params.data.start, params.data.end, tz="UTC")
    start = params.train.walk_forward.start
    assert start is not None
    check_covers(days, start, after=params.split.train_end)       # the RL window has forecasts from its first bar
    refits = block_starts(days, start, len(days), params.train.walk_forward.refit_years)
    history = pd.Timestamp(params.split.train_end, tz="UTC")
    windows = walk_forward_windows(days, pd.Timestamp(params.split.val_end, tz="UTC") + pd.Timedelta(days=1),
                                   params.backtest.walk_forward, purge=params.features.label_horizon,
                                   history_start=history)
    # every backtest test slice is forecast by a model refitted just before it, on data before it only
    assert {w.test.start for w in windows} <= set(refits)
    assert refits[0] == int(days.searchsorted(history, side="right"))
    if profile is None:
        assert [days[i].year for i in refits] == [2011, 2013, 2015, 2017, 2019, 2021]
    assert live_window(days, params.backtest.walk_forward, history).train.stop == len(days)


def test_ic_and_rank_ic_are_means_of_daily_cross_sectional_correlations() -> None:
    from tradepipe.models.evaluation import forecast_metrics

    days = pd.to_datetime(["2020-01-01"] * 3 + ["2020-01-02"] * 3 + ["2020-01-03"] * 3 + ["2020-01-06"] * 2
                          + ["2020-01-07"] * 3 + ["2020-01-08"] * 3).to_numpy()
    pred = np.array([1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 5, 5, 5, 1, 2, 3], dtype=float)
    actual = np.array([1, 2, 3,          # perfectly aligned: 1 and 1
                       103, 101, 102,    # ranks reversed-ish: Pearson = Spearman = -0.5 (the +100 level is irrelevant)
                       0, 1, 7,          # monotone but not linear: Pearson 7 / sqrt(2 * 86/3), Spearman 1
                       2, 1,             # two samples: skipped
                       1, 2, 3,          # constant forecast: skipped
                       4, 4, 4], dtype=float)  # constant outcome: skipped
    m = forecast_metrics(pred, actual, days)
    assert m["ic"] == pytest.approx((1.0 - 0.5 + 7.0 / np.sqrt(2 * 86 / 3)) / 3)
    assert m["rank_ic"] == pytest.approx((1.0 - 0.5 + 1.0) / 3)
    assert forecast_metrics(np.ones(3), np.arange(3.0), days[:3])["ic"] == 0.0      # no usable day
