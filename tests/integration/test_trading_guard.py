"""The OOD guard in a paper step: scored on every decision, a flagged bar is an event, then no orders (hold) or
a book sold to cash; unflagged bars trade as before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.integration.test_trading import START, _params, make_trader, run_bars, table
from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import Params
from tradepipe.risk import OodReference
from tradepipe.trading.decision import market_until
from tradepipe.trading.tables import Decision, Event, Fill, Position


@pytest.fixture
def guarded(tiny_policy: Path, bars: pd.DataFrame) -> TradingPolicy:
    """The tiny policy with a reference fitted on the bars before the account's first bar."""
    policy = TradingPolicy.load(tiny_policy)
    market = policy.market(bars)
    policy.ood = OodReference.fit(market.window(market.timestamps[0], START))
    return policy


def test_every_decision_is_scored_and_a_flagged_bar_holds_the_book(bars: pd.DataFrame, params: Params,
                                                                     guarded: TradingPolicy, tmp_path: Path) -> None:
    trader = make_trader(f"sqlite:///{tmp_path / 't.db'}", f"sqlite:///{tmp_path / 'b.db'}", bars,
                         _params(params, ood_threshold=1e-9, ood_action="hold"), guarded)
    results = [trader.step("acct", bar) for bar in trader.pending_bars("acct")[:5]]
    assert [r.status for r in results] == ["traded"] * 5 and all("book is held" in r.message for r in results)
    decisions, events = table(trader, Decision), table(trader, Event)
    assert list(decisions["guard"]) == ["hold"] * 5
    assert list(events.loc[events["kind"] == "ood", "rule"]) == ["ood_threshold"] * 5
    assert table(trader, Fill).empty  # held from the first bar on: still all cash, no order ever left
    first = trader.timestamps[trader.timestamps >= START][0]
    anchor = trader.timestamps[trader.timestamps < first][-trader.params.trading.warmup_bars]
    window = bars[(bars["timestamp"] >= anchor) & (bars["timestamp"] <= first)]
    expected = guarded.ood.outlier(market_until(guarded, window), -1).score
    assert decisions["ood_score"].iloc[0] == pytest.approx(expected, rel=1e-9)
    assert results[0].ood_score == pytest.approx(expected, rel=1e-9)


def test_unflagged_bars_trade_and_a_flagged_one_goes_to_cash(bars: pd.DataFrame, params: Params,
                                                             guarded: TradingPolicy, tmp_path: Path) -> None:
    trader = make_trader(f"sqlite:///{tmp_path / 't.db'}", f"sqlite:///{tmp_path / 'b.db'}", bars,
                         _params(params, ood_threshold=None, ood_action="cash"), guarded)
    assert run_bars(trader, 4) == ["traded"] * 4
    assert not table(trader, Fill).empty and table(trader, Decision)["guard"].isna().all()
    assert table(trader, Decision)["ood_score"].notna().all()  # scored even with the guard off
    assert np.abs(table(trader, Position)["qty"]).sum() > 0
    trader.params = _params(params, ood_threshold=1e-9, ood_action="cash")
    assert run_bars(trader, 2) == ["traded"] * 2  # bar 5 flagged: decided cash; bar 6 fills it
    decisions = table(trader, Decision)
    assert list(decisions["guard"].iloc[-2:]) == ["cash", "cash"]
    np.testing.assert_array_equal(decisions["target"].iloc[-2], [0.0] * len(guarded.spec.symbols) + [1.0])
    assert np.abs(table(trader, Position)["qty"]).max() < 1e-9  # sold to cash at bar 6's close


def test_the_server_answers_and_exports_the_guard(tmp_path: Path, bars: pd.DataFrame, guarded: TradingPolicy,
                                                  publish_champion: Callable[[str, Path], str]) -> None:
    from fastapi.testclient import TestClient

    from tests.integration.test_serving_accounts import AUTH, TOKEN, _desk, _payload, _project
    from tradepipe.serving import create_app

    stamps = sorted(bars["timestamp"].unique())
    root = _project(tmp_path / "served", bars[bars["timestamp"] <= stamps[-3]])
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["trading"].update(ood_threshold=1e-9, ood_action="hold")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    guarded.save(tmp_path / "guarded")
    publish_champion(f"sqlite:///{root / 'mlflow.db'}", tmp_path / "guarded")
    trader = _desk(root, stamps[-4])
    app = create_app(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", token=TOKEN, poll_seconds=0,
                     paper=(root, trader))
    with TestClient(app) as client:
        answer = client.post("/v1/accounts/acct/bars", headers=AUTH,
                             json=_payload(bars[bars["timestamp"] == stamps[-2]]))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["guard"] == "hold" and body["ood_score"] > 0 and len(body["steps"]) == 3
        assert all("book is held" in step["message"] for step in body["steps"])
        metrics = dict(line.rsplit(" ", 1) for line in client.get("/metrics").text.splitlines()
                       if line.startswith(("tradepipe_account_ood", "tradepipe_model_ood")))
    assert float(metrics['tradepipe_account_ood_flags_total{account="acct"}']) == 3.0
    assert float(metrics['tradepipe_model_ood_score{name="tradepipe-agent"}']) == pytest.approx(body["ood_score"])
