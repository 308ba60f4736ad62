"""Account lifecycle in the trade store: open, halt, resume, switch to a new champion; and read-outs for people."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from tradepipe.trading.store import TradeStore, now_utc, utc
from tradepipe.trading.tables import Account, Decision, Equity, Event, Fill, Order, Position

__all__ = ["AccountStatus", "halt", "history", "open_account", "request_switch", "resume", "status"]


def open_account(store: TradeStore, name: str, cash: float, model_name: str, model_version: int,
                 symbols: list[str], timestamps: pd.DatetimeIndex, first_bar: pd.Timestamp, warmup_bars: int,
                 broker: str) -> Account:
    """Create account ``name`` with ``cash``, deciding from the first bar at or after ``first_bar``.

    Its anchor is ``warmup_bars`` bars before that bar: every step computes features and risk from there.
    """
    if not cash > 0:
        raise ValueError(f"an account needs positive cash, got {cash}")
    position = int(timestamps.searchsorted(first_bar))
    if position >= len(timestamps):
        raise ValueError(f"no bar at or after {first_bar.date()} (the bars end {timestamps[-1].date()}): "
                         "ingest newer bars or choose an earlier start")
    if position < warmup_bars:
        raise ValueError(f"the account needs trading.warmup_bars={warmup_bars} bars before its first bar "
                         f"{timestamps[position].date()}, the bars hold {position}: start later or lower warmup_bars")
    with store.transaction() as session:
        if session.get(Account, name) is not None:
            raise ValueError(f"account {name!r} exists already; choose another name")
        account = Account(name=name, created_at=now_utc(), initial_cash=float(cash), model_name=model_name,
                          model_version=int(model_version), symbols=list(symbols),
                          anchor=timestamps[position - warmup_bars].to_pydatetime(),
                          first_bar=timestamps[position].to_pydatetime(), broker=broker, halted=False,
                          pending_version=None)
        session.add(account)
        session.add(Event(account=name, bar=None, kind="open", rule=None, symbol=None, created_at=now_utc(),
                          message=f"opened with {cash:,.2f} on {model_name} version {model_version}, first bar "
                                  f"{timestamps[position].date()}"))
    return account


def halt(store: TradeStore, name: str, reason: str) -> None:
    """Engage the kill switch: no order leaves until :func:`resume`."""
    _flag(store, name, True, "halt", reason)


def resume(store: TradeStore, name: str, reason: str) -> None:
    """Release the kill switch."""
    _flag(store, name, False, "resume", reason)


def request_switch(store: TradeStore, model_name: str, version: int) -> list[str]:
    """Switch every open account on ``model_name`` to ``version`` at its next bar; the names switched."""
    with store.transaction() as session:
        accounts = list(session.scalars(sa.select(Account).where(Account.model_name == model_name)))
        names = []
        for acct in accounts:
            if acct.model_version != version and acct.pending_version != version:
                acct.pending_version = version
                message = f"switch from version {acct.model_version} to {version} at the next bar"
                session.add(Event(account=acct.name, bar=None, kind="switch_requested", rule=None, symbol=None,
                                  created_at=now_utc(), message=message))
                names.append(acct.name)
        return names


@dataclass(frozen=True)
class AccountStatus:
    """The book now: positions with weights, cash, equity, drawdown, the model, halted or not, recent activity."""

    name: str
    model: str                 # for people: name, version, a pending switch
    model_version: int
    halted: bool
    last_bar: pd.Timestamp | None
    cash: float
    equity: float
    peak: float
    positions: pd.DataFrame    # symbol, qty, price, value, weight
    orders: pd.DataFrame       # the last orders
    events: pd.DataFrame       # the last events

    @property
    def drawdown(self) -> float:
        return 1.0 - self.equity / self.peak if self.peak > 0 else 0.0

    @property
    def gross_exposure(self) -> float:
        return float(self.positions["value"].abs().sum()) / self.equity if self.equity else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"account": self.name, "model": self.model, "halted": self.halted,
                "last_bar": self.last_bar.isoformat() if self.last_bar is not None else None,
                "cash": self.cash, "equity": self.equity, "drawdown": self.drawdown,
                "positions": self.positions.to_dict(orient="records"),
                "orders": self.orders.astype({"bar": str}).to_dict(orient="records"),
                "events": self.events.astype({"bar": str, "created_at": str}).to_dict(orient="records")}


def status(store: TradeStore, name: str, bars: pd.DataFrame, recent: int = 10) -> AccountStatus:
    """The status of ``name``, valued at the closes in canonical ``bars`` of its last processed bar."""
    with store.transaction() as session:
        acct = session.get(Account, name)
        if acct is None:
            raise KeyError(f"no paper account {name!r}")
        rows = list(session.scalars(sa.select(Equity).where(Equity.account == name).order_by(Equity.bar)))
        held = {p.symbol: p.qty for p in session.scalars(sa.select(Position).where(Position.account == name))}
        orders = _frame(session.execute(sa.select(Order.bar, Order.symbol, Order.qty, Order.price, Order.status,
                                                  Order.reason).where(Order.account == name)
                                        .order_by(Order.bar.desc(), Order.symbol).limit(recent)))
        events = _frame(session.execute(sa.select(Event.created_at, Event.bar, Event.kind, Event.rule, Event.symbol,
                                                  Event.message).where(Event.account == name)
                                        .order_by(Event.id.desc()).limit(recent)))
        model = f"{acct.model_name} v{acct.model_version}" + (
            f" (switching to v{acct.pending_version})" if acct.pending_version else "")
        cash = rows[-1].cash if rows else acct.initial_cash
        last = utc(rows[-1].bar) if rows else None
        prices = bars[bars["timestamp"] == last].set_index("symbol")["close"]
        positions = pd.DataFrame({"symbol": list(held), "qty": list(held.values())})
        positions["price"] = positions["symbol"].map(prices).astype(float)
        positions["value"] = positions["qty"] * positions["price"]
        equity = cash + float(positions["value"].sum())
        positions["weight"] = positions["value"] / equity if equity else 0.0
        peak = max([acct.initial_cash, *(r.equity for r in rows)])
        return AccountStatus(name, model, acct.model_version, acct.halted, last, cash, equity, peak,
                             positions[positions["qty"] != 0].reset_index(drop=True), orders, events)


def history(store: TradeStore, name: str) -> dict[str, pd.DataFrame]:
    """Orders, fills, equity, decisions and events of ``name`` as tables (for CSV export)."""
    tables = {"orders": Order.__table__, "fills": Fill.__table__, "equity": Equity.__table__,
              "decisions": Decision.__table__, "events": Event.__table__}
    with store.transaction() as session:
        if session.get(Account, name) is None:
            raise KeyError(f"no paper account {name!r}")
        return {key: pd.read_sql(sa.select(table).where(table.c.account == name), session.connection())
                for key, table in tables.items()}


def _flag(store: TradeStore, name: str, halted: bool, kind: str, reason: str) -> None:
    with store.transaction() as session:
        acct = session.get(Account, name)
        if acct is None:
            raise KeyError(f"no paper account {name!r}")
        acct.halted = halted
        session.add(Event(account=name, bar=None, kind=kind, rule="manual", symbol=None, message=reason,
                          created_at=now_utc()))


def _frame(result: sa.Result[Any]) -> pd.DataFrame:
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
