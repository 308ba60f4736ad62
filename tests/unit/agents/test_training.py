"""Training helpers: the equal-weight baselines the agents are compared with on the validation tail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradepipe.agents.policy import PolicySpec
from tradepipe.agents.training import equal_weight_sharpes
from tradepipe.config import RiskParams
from tradepipe.core.execution import execute
from tradepipe.core.market import Market
from tradepipe.core.metrics import sharpe_ratio

DAYS = pd.bdate_range("2015-01-01", periods=200, tz="UTC")
LOOSE = RiskParams(max_weight=1.0, target_vol=None, max_drawdown=None, stop_loss=None, take_profit=None,
                   turbulence_quantile=None)


def _market(vol: float) -> Market:
    rng = np.random.default_rng(4)
    returns = rng.normal(0.001, vol, (len(DAYS), 4))
    return Market(DAYS, ["A", "B", "C", "D"], returns, rng.normal(size=(len(DAYS), 4, 2)).astype(np.float32),
                  np.zeros((len(DAYS), 4), np.float32))


def test_equal_weight_is_one_over_n_executed_from_the_first_fill() -> None:
    market, spec = _market(0.01), PolicySpec(["A", "B", "C", "D"], lookback=2, cost_rate=0.001, risk=LOOSE)
    sharpes = equal_weight_sharpes(market, spec)
    hand = execute(np.full((len(DAYS), 4), 0.25), market.returns, 0.001).net_returns[2:]
    assert sharpes["equal_weight.val_sharpe"] == pytest.approx(sharpe_ratio(pd.Series(hand)))
    # a risk manager whose rules never bind leaves the 1/N book as it is, decided from bar lookback - 1 on
    book = np.full((len(DAYS), 4), 0.25)
    book[:1] = 0.0
    managed = execute(book, market.returns, 0.001).net_returns[2:]
    assert sharpes["equal_weight_risk_managed.val_sharpe"] == pytest.approx(sharpe_ratio(pd.Series(managed)))


def test_a_binding_risk_manager_changes_the_risk_managed_baseline_only() -> None:
    market = _market(0.05)  # far above the 20 % volatility target
    loose = equal_weight_sharpes(market, PolicySpec(["A", "B", "C", "D"], 1, 0.001, risk=LOOSE))
    managed = equal_weight_sharpes(market, PolicySpec(["A", "B", "C", "D"], 1, 0.001))
    assert managed["equal_weight.val_sharpe"] == loose["equal_weight.val_sharpe"]
    assert (managed["equal_weight_risk_managed.val_sharpe"]
            != pytest.approx(loose["equal_weight_risk_managed.val_sharpe"]))
