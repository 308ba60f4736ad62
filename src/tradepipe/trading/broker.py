"""Brokers behind one small protocol, and the ``SimulatedBroker`` that fills market-on-close paper orders.

The simulated broker keeps its own ledger (its own database, apart from the trade store), as a real broker
would, so that reconciliation compares two independent records. Orders are idempotent by client order id:
submitting an id again returns the order already on file and never fills twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tradepipe.trading.store import sqlite_pragmas, utc

__all__ = ["Broker", "BrokerFill", "BrokerOrder", "OrderRequest", "SimulatedBroker"]

Quote = Callable[[str, pd.Timestamp], float]  # (symbol, bar) -> the bar's close


@dataclass(frozen=True)
class OrderRequest:
    """A market-on-close order for ``qty`` shares (signed) of ``symbol`` at the close of ``bar``."""

    client_order_id: str
    symbol: str
    qty: float
    bar: pd.Timestamp


@dataclass(frozen=True)
class BrokerFill:
    """A fill as the broker reports it; ``fill_id`` is unique per broker."""

    fill_id: str
    client_order_id: str
    symbol: str
    qty: float
    price: float
    cost: float
    bar: pd.Timestamp


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker knows it, with the fills it reported in the same answer (a later fill of an order
    still ``submitted`` is asked for with ``Broker.fills``)."""

    client_order_id: str
    symbol: str
    qty: float
    status: str           # submitted | filled | rejected | cancelled
    reason: str | None = None
    fills: tuple[BrokerFill, ...] = ()


class Broker(Protocol):
    """What the trading step needs from a broker (paper or live)."""

    def submit(self, account: str, order: OrderRequest) -> BrokerOrder: ...
    def submit_many(self, account: str, orders: list[OrderRequest]) -> list[BrokerOrder]: ...
    def cancel(self, account: str, client_order_id: str) -> None: ...
    def open_orders(self, account: str) -> list[BrokerOrder]: ...
    def positions(self, account: str) -> dict[str, float]: ...
    def fills(self, account: str, client_order_ids: list[str]) -> list[BrokerFill]: ...
    def cash(self, account: str) -> float: ...
    def ledger(self, account: str, client_order_ids: list[str]
               ) -> tuple[dict[str, float], float, list[BrokerFill]]: ...


class _Ledger(DeclarativeBase):
    pass


class _Account(_Ledger):
    __tablename__ = "broker_accounts"
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    cash: Mapped[float]


class _Order(_Ledger):
    __tablename__ = "broker_orders"
    client_order_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    account: Mapped[str] = mapped_column(sa.String(64))
    symbol: Mapped[str] = mapped_column(sa.String(64))
    qty: Mapped[float]
    bar: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))
    status: Mapped[str] = mapped_column(sa.String(20))
    reason: Mapped[str | None] = mapped_column(sa.Text)


class _Fill(_Ledger):
    __tablename__ = "broker_fills"
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(sa.String(200), unique=True)
    account: Mapped[str] = mapped_column(sa.String(64))
    symbol: Mapped[str] = mapped_column(sa.String(64))
    qty: Mapped[float]
    price: Mapped[float]
    cost: Mapped[float]
    bar: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))


class _Position(_Ledger):
    __tablename__ = "broker_positions"
    account: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    qty: Mapped[float]


class SimulatedBroker:
    """Paper broker: fills each order in full at ``quote(symbol, bar)``, charging ``cost_rate`` on the notional."""

    name = "simulated"

    def __init__(self, url: str, cost_rate: float, quote: Quote) -> None:
        self.engine = sa.create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", sqlite_pragmas)
        _Ledger.metadata.create_all(self.engine)
        self.cost_rate, self.quote = cost_rate, quote

    def open_account(self, account: str, cash: float) -> None:
        """Fund a new paper account; an account of that name must not exist."""
        with Session(self.engine) as session, session.begin():
            if session.get(_Account, account) is not None:
                raise ValueError(f"the paper broker already has an account {account!r}")
            session.add(_Account(name=account, cash=float(cash)))

    def submit(self, account: str, order: OrderRequest) -> BrokerOrder:
        return self.submit_many(account, [order])[0]

    def submit_many(self, account: str, orders: list[OrderRequest]) -> list[BrokerOrder]:
        """Submit ``orders`` in one transaction (one step's orders); each is idempotent by its client order id. Each
        answer carries its order's fill (a known order's, on a retry, the one first made)."""
        with self.engine.begin() as conn:
            ids = [o.client_order_id for o in orders]
            known = {row.client_order_id: row for row in conn.execute(_KNOWN, {"ids": ids})}
            cash = conn.execute(_CASH, {"account": account}).scalar()
            if cash is None:
                raise KeyError(f"the paper broker has no account {account!r}")
            positions = {str(row.symbol): float(row.qty) for row in conn.execute(_POSITIONS, {"account": account})}
            held = set(positions)
            rows: list[dict[str, object]] = []
            fills: list[dict[str, object]] = []
            answers: dict[str, BrokerOrder] = {}
            for order in (o for o in orders if o.client_order_id not in known):
                row, fill, cash = self._fill(account, cash, positions, order)
                rows.append(row)
                fills += [fill] if fill is not None else []
                answers[order.client_order_id] = BrokerOrder(
                    order.client_order_id, order.symbol, order.qty, str(row["status"]), cast(str | None, row["reason"]),
                    () if fill is None else (_fill_of(fill, order.bar),))
            if rows:
                conn.execute(_INSERT_ORDERS, rows)
            if fills:
                conn.execute(_INSERT_FILLS, fills)
                changed = {str(f["symbol"]) for f in fills}
                added = [{"account": account, "symbol": s, "qty": positions[s]} for s in sorted(changed - held)]
                if added:
                    conn.execute(_INSERT_POSITIONS, added)
                if changed & held:
                    conn.execute(_SET_POSITION, [{"a": account, "s": s, "q": positions[s]}
                                                 for s in sorted(changed & held)])
                conn.execute(_SET_CASH, {"a": account, "c": cash})
            if known:  # a retry: the order as the ledger holds it, with the fill first made
                filed = {f.client_order_id: (f,) for f in _fills(conn, account, list(known))}
                answers.update({cid: _order(row, filed.get(cid, ())) for cid, row in known.items()})
            return [answers[o.client_order_id] for o in orders]

    def _fill(self, account: str, cash: float, positions: dict[str, float], order: OrderRequest
              ) -> tuple[dict[str, object], dict[str, object] | None, float]:
        """The order's row, its fill's (None when rejected) and the cash after; ``positions`` updated."""
        price = float(self.quote(order.symbol, order.bar))
        row: dict[str, object] = {"client_order_id": order.client_order_id, "account": account,
                                  "symbol": order.symbol, "qty": order.qty, "bar": order.bar.to_pydatetime(),
                                  "status": "filled", "reason": None}
        if not price > 0.0:
            row["status"], row["reason"] = "rejected", f"no positive close for {order.symbol} at {order.bar.date()}"
            return row, None, cash
        cost = self.cost_rate * abs(order.qty * price)
        cash -= order.qty * price + cost
        positions[order.symbol] = positions[order.symbol] + order.qty if order.symbol in positions else order.qty
        return row, {"client_order_id": order.client_order_id, "account": account, "symbol": order.symbol,
                     "qty": order.qty, "price": price, "cost": cost, "bar": order.bar.to_pydatetime()}, cash

    def cancel(self, account: str, client_order_id: str) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(_Order, client_order_id)
            if row is not None and row.account == account and row.status == "submitted":
                row.status = "cancelled"

    def open_orders(self, account: str) -> list[BrokerOrder]:
        with Session(self.engine) as session:
            rows = session.scalars(sa.select(_Order).where(_Order.account == account, _Order.status == "submitted"))
            return [_order(row) for row in rows]

    def positions(self, account: str) -> dict[str, float]:
        with self.engine.connect() as conn:
            return _positions(conn, account)

    def fills(self, account: str, client_order_ids: list[str]) -> list[BrokerFill]:
        with self.engine.connect() as conn:
            return _fills(conn, account, client_order_ids)

    def cash(self, account: str) -> float:
        with self.engine.connect() as conn:
            return _cash(conn, account)

    def ledger(self, account: str, client_order_ids: list[str]) -> tuple[dict[str, float], float, list[BrokerFill]]:
        """``positions``, ``cash`` and ``fills`` of the account on one connection (what reconciliation compares)."""
        with self.engine.connect() as conn:
            return _positions(conn, account), _cash(conn, account), _fills(conn, account, client_order_ids)


def _positions(conn: sa.Connection, account: str) -> dict[str, float]:
    return {str(row.symbol): float(row.qty) for row in conn.execute(_POSITIONS, {"account": account})
            if row.qty != 0.0}


def _fills(conn: sa.Connection, account: str, client_order_ids: list[str]) -> list[BrokerFill]:
    rows = conn.execute(_FILLS, {"account": account, "ids": client_order_ids})
    return [_fill_of(row._mapping, utc(row.bar)) for row in rows]


def _fill_of(fill: Any, bar: pd.Timestamp) -> BrokerFill:
    """A ledger fill row (or the values of one) as reported: its id is the order's (one fill per order)."""
    return BrokerFill(f"sim-{fill['client_order_id']}", fill["client_order_id"], fill["symbol"], fill["qty"],
                      fill["price"], fill["cost"], bar)


def _cash(conn: sa.Connection, account: str) -> float:
    cash = conn.execute(_CASH, {"account": account}).scalar()
    if cash is None:
        raise KeyError(f"the paper broker has no account {account!r}")
    return float(cash)


def _order(row: Any, fills: tuple[BrokerFill, ...] = ()) -> BrokerOrder:
    return BrokerOrder(row.client_order_id, row.symbol, row.qty, row.status, row.reason, fills)


_TA, _TO, _TF, _TP = cast(tuple[sa.Table, ...], (_Account.__table__, _Order.__table__, _Fill.__table__,
                                                _Position.__table__))
_KNOWN = sa.select(_TO).where(_TO.c.client_order_id.in_(sa.bindparam("ids", expanding=True)))
_CASH = sa.select(_TA.c.cash).where(_TA.c.name == sa.bindparam("account"))
_POSITIONS = sa.select(_TP.c.symbol, _TP.c.qty).where(_TP.c.account == sa.bindparam("account"))
_FILLS = sa.select(_TF).where(_TF.c.account == sa.bindparam("account"),
                              _TF.c.client_order_id.in_(sa.bindparam("ids", expanding=True))).order_by(_TF.c.seq)
_INSERT_ORDERS, _INSERT_FILLS, _INSERT_POSITIONS = sa.insert(_TO), sa.insert(_TF), sa.insert(_TP)
_SET_POSITION = sa.update(_TP).where(_TP.c.account == sa.bindparam("a"), _TP.c.symbol == sa.bindparam("s")) \
    .values(qty=sa.bindparam("q"))
_SET_CASH = sa.update(_TA).where(_TA.c.name == sa.bindparam("a")).values(cash=sa.bindparam("c"))
