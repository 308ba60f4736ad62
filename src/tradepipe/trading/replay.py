"""Replay a date range on a fresh paper account and set it beside the backtest engine on the same bars and costs."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import Params
from tradepipe.core.execution import execute
from tradepipe.trading.accounts import open_account
from tradepipe.trading.desk import open_desk
from tradepipe.trading.store import utc
from tradepipe.trading.tables import Account, Equity

__all__ = ["Comparison", "replay"]

ACCOUNT = "replay"


@dataclass(frozen=True)
class Comparison:
    """Paper equity (per unit of starting cash) against the engine's, bar by bar, and the largest differences."""

    frame: pd.DataFrame   # bar, paper_equity, engine_equity, paper_turnover, engine_turnover, paper_cost, engine_cost

    def summary(self) -> dict[str, Any]:
        f = self.frame
        return {"bars": len(f), "start": f["bar"].iloc[0].isoformat(), "end": f["bar"].iloc[-1].isoformat(),
                "paper_final_equity": float(f["paper_equity"].iloc[-1]),
                "engine_final_equity": float(f["engine_equity"].iloc[-1]),
                "max_abs_equity_diff": float((f["paper_equity"] - f["engine_equity"]).abs().max()),
                "max_abs_turnover_diff": float((f["paper_turnover"] - f["engine_turnover"]).abs().max()),
                "max_abs_cost_diff": float((f["paper_cost"] - f["engine_cost"]).abs().max()),
                "paper_total_turnover": float(f["paper_turnover"].sum()),
                "paper_total_costs": float(f["paper_cost"].sum())}


def replay(root: Path, params: Params, policy: TradingPolicy, version: int, start: pd.Timestamp, end: pd.Timestamp,
           cash: float = 1_000_000.0, bars: pd.DataFrame | None = None) -> Comparison:
    """Open a fresh account (in a scratch store and broker), step every bar of [start, end], compare with the engine."""
    with tempfile.TemporaryDirectory(prefix="tradepipe-replay-") as tmp:
        work = Path(tmp)
        trader = open_desk(root, params, bars, store_url=f"sqlite:///{work / 'trades.db'}",
                           broker_url=f"sqlite:///{work / 'broker.db'}")
        trader.load_policy = lambda _name, _version: policy
        account = open_account(trader.store, ACCOUNT, cash, "replay", version, policy.spec.symbols,
                               trader.timestamps, start, params.trading.warmup_bars, "simulated")
        trader.broker.open_account(ACCOUNT, cash)  # type: ignore[attr-defined]
        for bar in trader.pending_bars(ACCOUNT, end):
            trader.step(ACCOUNT, bar)
        with trader.store.transaction() as session:
            acct = session.get(Account, ACCOUNT)
            assert acct is not None
            paper = pd.read_sql(sa.select(Equity.bar, Equity.equity, Equity.turnover, Equity.costs)
                                .where(Equity.account == ACCOUNT).order_by(Equity.bar), session.connection())
        trader.store.dispose()
    paper["bar"] = paper["bar"].map(utc)
    window = trader.bars[(trader.bars["timestamp"] >= utc(account.anchor)) & (trader.bars["timestamp"] <= end)]
    market = policy.market(window)
    first = int(market.timestamps.searchsorted(utc(account.first_bar)))
    run = execute(policy.targets(market, start=first), market.returns, params.costs.rate)
    engine = pd.DataFrame({"bar": market.timestamps[first:], "engine_equity": run.equity[first:],
                           "engine_turnover": run.turnover[first:], "engine_cost": run.costs[first:]})
    frame = engine.merge(paper, on="bar", how="inner", validate="one_to_one")
    before = frame["equity"] + frame["costs"]
    frame = frame.assign(paper_equity=frame["equity"] / cash, paper_turnover=frame["turnover"],
                         paper_cost=np.where(before > 0, frame["costs"] / before, 0.0))
    return Comparison(frame[["bar", "paper_equity", "engine_equity", "paper_turnover", "engine_turnover",
                             "paper_cost", "engine_cost"]])
