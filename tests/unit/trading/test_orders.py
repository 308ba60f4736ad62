"""Order sizing against the engine's accounting, the fail-safes, and a property test of the paper books."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tradepipe.config import TradingParams
from tradepipe.core.execution import rebalance
from tradepipe.trading.broker import OrderRequest, SimulatedBroker
from tradepipe.trading.orders import bar_refusals, order_refusals, size_orders

RATE = 0.0015


def test_fractional_orders_land_on_the_engine_book_and_cost() -> None:
    shares, prices, cash = np.array([10.0, 0.0, 5.0]), np.array([100.0, 50.0, 20.0]), 500.0
    target = np.array([0.2, 0.5, 0.1])
    qty = size_orders(target, shares, cash, prices, RATE, TradingParams())
    equity = cash + shares @ prices
    drifted = shares * prices / equity
    net, turnover, cost = rebalance(drifted, np.zeros(3), target, RATE)   # no move: drifted is what is held
    paid = RATE * np.abs(qty * prices).sum()
    after = cash - qty @ prices - paid + (shares + qty) @ prices
    assert paid == pytest.approx(cost * equity, rel=1e-12)
    assert after == pytest.approx(equity * (1 + net), rel=1e-12)
    np.testing.assert_allclose((shares + qty) * prices / after, target, rtol=1e-12)


def test_whole_shares_band_and_minimum_notional() -> None:
    shares, prices, cash = np.array([10.0, 3.0, 0.0]), np.array([100.0, 50.0, 20.0]), 1000.0
    target = np.array([0.45, 0.07, 0.3])             # asset 1 sits at 150 / 2150 = 0.0698: inside a 1% band
    params = TradingParams(fractional=False, no_trade_band=0.01, min_order_notional=100.0)
    qty = size_orders(target, shares, cash, prices, RATE, params)
    assert qty[1] == 0.0                             # band
    assert np.all(qty == np.trunc(qty))              # whole shares, rounded toward zero
    assert qty[2] == np.trunc(qty[2]) and qty[2] > 0
    small = size_orders(np.array([0.4656, 0.0698, 0.0]), shares, cash, prices, RATE, params)
    assert small[0] == 0.0                           # under 100 of notional: not sent


def test_bar_and_order_fail_safes_name_the_symbol_and_rule() -> None:
    params = TradingParams(price_band=0.2, max_order_notional=1000.0, max_position_weight=0.3)
    got = bar_refusals(["A", "B", "C"], np.array([np.nan, 0.0, 10.0]), np.array([9.0, 9.0, 9.0]), params)
    assert [(r.rule, r.symbol) for r in got] == [("price_invalid", "A"), ("price_invalid", "B")]
    moved = bar_refusals(["A", "B"], np.array([13.0, 9.5]), np.array([10.0, 10.0]), params)
    assert [(r.rule, r.symbol) for r in moved] == [("price_band", "A")] and "30.0%" in moved[0].message
    refused = order_refusals(["A", "B", "C"], np.array([20.0, 5.0, 1.0]), np.zeros(3), np.array([100.0, 10.0, 10.0]),
                             1000.0, params)
    assert {i: r.rule for i, r in refused.items()} == {0: "max_order_notional"}
    heavy = order_refusals(["A"], np.array([4.0]), np.zeros(1), np.array([100.0]), 1000.0, params)
    assert heavy[0].rule == "max_position_weight"


@settings(max_examples=60, deadline=None)
@given(moves=arrays(np.float64, (10, 3), elements=st.floats(-0.2, 0.2)),
       targets=arrays(np.float64, (10, 3), elements=st.floats(0.0, 0.6)),
       fractional=st.booleans())
def test_cash_plus_positions_is_the_equity_and_no_fill_breaches_the_limit(
        moves: np.ndarray, targets: np.ndarray, fractional: bool) -> None:
    """Any price path and any targets: the broker's cash + shares x prices is the account's equity less the costs
    paid, and no fill takes a position beyond max_position_weight (a position drifted beyond it only shrinks)."""
    params = TradingParams(fractional=fractional, max_position_weight=0.4)
    prices = 50.0 * np.cumprod(1.0 + moves, axis=0)
    bars = pd.date_range("2020-01-01", periods=len(prices), tz="UTC")
    quotes = {(s, t): prices[i, j] for i, t in enumerate(bars) for j, s in enumerate("ABC")}
    broker = SimulatedBroker("sqlite://", RATE, lambda s, t: quotes[(s, t)])   # an in-memory ledger
    broker.open_account("x", 10_000.0)
    shares, cash = np.zeros(3), 10_000.0
    for i, bar in enumerate(bars):
        target = targets[i] / max(1.0, targets[i].sum())            # long-only, at most fully invested
        qty = size_orders(target, shares, cash, prices[i], RATE, params)
        equity, held_before = cash + shares @ prices[i], shares.copy()
        refused = order_refusals(list("ABC"), qty, shares, prices[i], equity * (1 - RATE), params)
        for j in np.flatnonzero(qty):
            if int(j) not in refused:
                broker.submit("x", OrderRequest(f"x:{i}:{j}", "ABC"[j], float(qty[j]), bar))
        held = broker.positions("x")
        shares = np.array([held.get(s, 0.0) for s in "ABC"])
        cash = broker.cash("x")
        paid = sum(f.cost for f in broker.fills("x", [f"x:{i}:{j}" for j in range(3)]))
        assert cash + shares @ prices[i] == pytest.approx(equity - paid, rel=1e-9, abs=1e-9)
        after = cash + shares @ prices[i]
        before = np.abs(held_before * prices[i])
        assert np.all(np.abs(shares * prices[i]) <= np.maximum(0.4 * after, before) + 1e-6)


def test_broker_submissions_are_idempotent(tmp_path: Path) -> None:
    bar = pd.Timestamp("2021-01-04", tz="UTC")
    broker = SimulatedBroker(f"sqlite:///{tmp_path / 'b.db'}", 0.001, lambda s, t: 10.0)
    broker.open_account("x", 1000.0)
    first = broker.submit("x", OrderRequest("x:1:A", "A", 5.0, bar))
    again = broker.submit("x", OrderRequest("x:1:A", "A", 5.0, bar))
    assert first == again and broker.positions("x") == {"A": 5.0}   # the retry answers the same order and fill
    assert broker.cash("x") == pytest.approx(1000.0 - 50.0 - 0.05)
    assert broker.fills("x", ["x:1:A"]) == list(first.fills) and first.fills[0].price == 10.0
    both = broker.submit_many("x", [OrderRequest("x:2:A", "A", -2.0, bar), OrderRequest("x:2:B", "B", 1.0, bar)])
    assert [f for order in both for f in order.fills] == broker.fills("x", ["x:2:A", "x:2:B"])
    assert [order.fills[0].qty for order in both] == [-2.0, 1.0] and broker.positions("x") == {"A": 3.0, "B": 1.0}
