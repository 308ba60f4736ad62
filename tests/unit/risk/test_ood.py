"""The OOD reference: fitted on the training window only, about 1 on familiar bars, large on a shocked one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradepipe.agents.policy import TradingPolicy
from tradepipe.core.market import Market
from tradepipe.risk import OodReference
from tradepipe.risk.ood import STD_FLOOR

CUT = pd.Timestamp("2012-07-01", tz="UTC")


@pytest.fixture(scope="module")
def market(tiny_policy: Path, bars: pd.DataFrame) -> Market:
    """The real market arrays (scaled features and forecasts of four stocks, 2010-2013) of the tiny policy."""
    return TradingPolicy.load(tiny_policy).market(bars)


def test_training_bars_score_one_in_the_mean_square(market: Market) -> None:
    train = market.window(market.timestamps[0], CUT)
    ref = OodReference.fit(train)
    rows = OodReference.rows(train, slice(None))
    std = rows.std(axis=0)
    assert (std >= STD_FLOOR).sum() > 10
    # a column's mean square z on its own window is 1, or (std / floor)^2 where the floor replaced its std
    assert np.mean(ref.scores(train) ** 2) == pytest.approx(np.mean(np.minimum(1.0, (std / STD_FLOOR) ** 2)),
                                                            rel=1e-9)
    np.testing.assert_allclose(ref.mean, rows.mean(axis=0))


def test_a_shocked_column_raises_the_score_and_is_named(market: Market) -> None:
    ref = OodReference.fit(market.window(market.timestamps[0], CUT))
    t = len(market.timestamps) - 1
    features = market.features.copy()
    features[t, 2, 1] += 40 * ref.std[2 * market.features.shape[2] + 1]  # asset 2, feature 1: 40 sd away
    shocked = replace(market, features=features)
    before, after = ref.outlier(market, t), ref.outlier(shocked, t)
    column = 2 * market.features.shape[2] + 1
    assert after.column == column
    assert after.z == pytest.approx((features[t, 2, 1] - ref.mean[column]) / ref.std[column], rel=1e-6)
    assert after.score > before.score + 1.0
    assert after.score == pytest.approx(np.sqrt(np.mean(np.square(ref.z(shocked, t)))))


def test_the_reference_sees_only_its_window_and_a_score_only_its_bar(market: Market) -> None:
    window = market.window(market.timestamps[0], CUT)
    future = market.features.copy()
    future[len(window.timestamps):] *= -3.0  # rewrite everything after the training window
    perturbed = replace(market, features=future)
    ref = OodReference.fit(perturbed.window(market.timestamps[0], CUT))
    np.testing.assert_array_equal(ref.mean, OodReference.fit(window).mean)
    scores, perturbed_scores = ref.scores(market), ref.scores(perturbed)
    np.testing.assert_array_equal(scores[:len(window.timestamps)], perturbed_scores[:len(window.timestamps)])
    assert not np.allclose(scores[len(window.timestamps):], perturbed_scores[len(window.timestamps):])


def test_json_round_trip_is_exact_and_bad_references_are_refused(market: Market) -> None:
    ref = OodReference.fit(market)
    back = OodReference.from_json(ref.to_json())
    np.testing.assert_array_equal(back.mean, ref.mean)
    np.testing.assert_array_equal(back.std, ref.std)
    with pytest.raises(ValueError, match="std > 0"):
        OodReference.from_json({"mean": [0.0, 1.0], "std": [1.0, 0.0]})
    with pytest.raises(ValueError, match="market columns"):
        OodReference(ref.mean[:-1], ref.std[:-1]).outlier(market, 0)
    with pytest.raises(ValueError, match="at least 2 bars"):
        OodReference.fit(market.take(slice(0, 1)))
