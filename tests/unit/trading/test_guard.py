"""The paper decision's OOD guard: flagged beyond the threshold, then the book is held or goes to cash."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import TradingParams
from tradepipe.risk import OodReference, RiskState
from tradepipe.trading.decision import Decided
from tradepipe.trading.guard import apply_guard, check


@pytest.fixture(scope="module")
def guarded(tiny_policy: Path, bars: pd.DataFrame) -> tuple[TradingPolicy, object]:
    policy = TradingPolicy.load(tiny_policy)
    market = policy.market(bars)
    policy.ood = OodReference.fit(market.window(market.timestamps[0], pd.Timestamp("2012-01-01", tz="UTC")))
    return policy, market


def test_a_bar_beyond_the_threshold_is_flagged_and_named(guarded: tuple) -> None:
    policy, market = guarded
    score = policy.ood.outlier(market, len(market.timestamps) - 1).score
    calm = check(policy, market, TradingParams(ood_threshold=score + 0.01))
    assert not calm.flagged and calm.outlier is not None and calm.outlier.score == pytest.approx(score)
    features = market.features.copy()
    features[-1, 1, 0] = 50.0  # JPM's first feature (rsi_14 in the tiny recipe), absurdly far out
    verdict = check(policy, replace(market, features=features), TradingParams(ood_threshold=score + 0.01))
    assert verdict.flagged and verdict.outlier.score > score
    assert "JPM rsi_14" in verdict.message and "held" in verdict.message
    assert not check(policy, replace(market, features=features), TradingParams(ood_threshold=None)).flagged


def test_flagged_decisions_hold_the_book_or_go_to_cash(guarded: tuple) -> None:
    policy, market = guarded
    decided = Decided(np.array([0.3, 0.3, 0.2, 0.2, 0.0]), np.array([0.25, 0.25, 0.2, 0.2, 0.1]),
                      RiskState.start(1, 4))
    book = np.array([0.1, 0.0, 0.4, 0.0, 0.5])
    flagged = check(policy, market, TradingParams(ood_threshold=1e-9))
    assert flagged.flagged
    held = apply_guard(decided, book, flagged, TradingParams(ood_action="hold"))
    np.testing.assert_array_equal(held.target, book)
    np.testing.assert_array_equal(held.proposed, decided.proposed)  # what the policy wanted stays on record
    cash = apply_guard(decided, book, flagged, TradingParams(ood_action="cash"))
    np.testing.assert_array_equal(cash.target, [0.0, 0.0, 0.0, 0.0, 1.0])
    passed = check(policy, market, TradingParams(ood_threshold=1e9))
    assert apply_guard(decided, book, passed, TradingParams()) is decided


def test_a_policy_without_a_reference_is_not_guarded(tiny_policy: Path, bars: pd.DataFrame) -> None:
    policy = TradingPolicy.load(tiny_policy)
    assert policy.ood is None
    verdict = check(policy, policy.market(bars), TradingParams(ood_threshold=1e-9))
    assert verdict.outlier is None and not verdict.flagged and "no OOD reference" in verdict.message


def test_the_reference_is_saved_with_the_policy(guarded: tuple, tmp_path: Path) -> None:
    policy, _ = guarded
    policy.save(tmp_path / "p")
    assert (tmp_path / "p" / "ood.json").is_file()
    np.testing.assert_array_equal(TradingPolicy.load(tmp_path / "p").ood.std, policy.ood.std)
