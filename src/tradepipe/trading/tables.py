"""The trade store's tables (SQLAlchemy 2 ORM); ``migrations/`` creates them, a test checks the two agree.

Append-only for the audit: decisions, fills, equity and events are only ever inserted. Orders change status
(new → submitted → filled / partially_filled / rejected / cancelled, with the reason); positions hold the
current quantities (the fills explain them); an account's ``halted`` flag mirrors its last halt/resume event.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Account", "Decision", "Equity", "Event", "Fill", "Order", "Position", "metadata"]

STAMP = sa.DateTime(timezone=True)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: STAMP, float: sa.Float, dict[str, Any]: sa.JSON, list[Any]: sa.JSON}


class Account(Base):
    """A paper account: cash at opening, the model it trades, its universe and the first bar of its data."""

    __tablename__ = "accounts"
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    created_at: Mapped[dt.datetime]
    initial_cash: Mapped[float]
    model_name: Mapped[str] = mapped_column(sa.String(200))
    model_version: Mapped[int]
    symbols: Mapped[list[Any]]
    anchor: Mapped[dt.datetime]       # first bar of the data every step computes features and risk from
    first_bar: Mapped[dt.datetime]    # first bar the account decides at
    broker: Mapped[str] = mapped_column(sa.String(32))
    halted: Mapped[bool]
    pending_version: Mapped[int | None]  # a new champion to switch to at the next bar


class Decision(Base):
    """What the policy proposed at a bar's close, what the risk manager let through, and its state after."""

    __tablename__ = "decisions"
    __table_args__ = (sa.UniqueConstraint("account", "bar", name="uq_decision_bar"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("accounts.name"))
    bar: Mapped[dt.datetime]
    model_name: Mapped[str] = mapped_column(sa.String(200))
    model_version: Mapped[int]
    proposed: Mapped[list[Any]]       # the policy's book: N asset weights, then cash
    target: Mapped[list[Any]]         # the risk-managed book filled at the next bar's close
    risk_state: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    ood_score: Mapped[float | None] = mapped_column(default=None)  # the OOD guard's score of the bar (None: unscored)
    guard: Mapped[str | None] = mapped_column(sa.String(8), default=None)  # "hold"/"cash" when flagged, else None


class Order(Base):
    """An order for one symbol at a fill bar; ``client_order_id`` is ``account:bar:symbol`` (idempotent retries)."""

    __tablename__ = "orders"
    client_order_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    account: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("accounts.name"))
    decision_id: Mapped[int] = mapped_column(sa.ForeignKey("decisions.id"))
    bar: Mapped[dt.datetime]
    symbol: Mapped[str] = mapped_column(sa.String(64))
    qty: Mapped[float]                # signed: buy > 0, sell < 0
    price: Mapped[float]              # the close it was sized at
    status: Mapped[str] = mapped_column(sa.String(20))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime]


class Fill(Base):
    """A fill reported by the broker (append-only)."""

    __tablename__ = "fills"
    broker_fill_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    account: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("accounts.name"))
    client_order_id: Mapped[str] = mapped_column(sa.String(200), sa.ForeignKey("orders.client_order_id"))
    bar: Mapped[dt.datetime]
    symbol: Mapped[str] = mapped_column(sa.String(64))
    qty: Mapped[float]
    price: Mapped[float]
    cost: Mapped[float]
    created_at: Mapped[dt.datetime]


class Position(Base):
    """Shares held now, per symbol (the fills explain every change)."""

    __tablename__ = "positions"
    account: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("accounts.name"), primary_key=True)
    symbol: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    qty: Mapped[float]


class Equity(Base):
    """The account marked at a bar's close after its fills: one row per processed bar (append-only)."""

    __tablename__ = "equity"
    account: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("accounts.name"), primary_key=True)
    bar: Mapped[dt.datetime] = mapped_column(primary_key=True)
    cash: Mapped[float]
    equity: Mapped[float]
    gross_exposure: Mapped[float]
    turnover: Mapped[float]           # notional traded at this close / equity before trading
    costs: Mapped[float]              # paid at this close, account currency
    model_version: Mapped[int]
    created_at: Mapped[dt.datetime]


class Event(Base):
    """What an audit must see: open, halt, resume, rejection, refused bar, reconciliation mismatch, model switch,
    a decision the OOD guard flagged."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("accounts.name"))
    bar: Mapped[dt.datetime | None]
    kind: Mapped[str] = mapped_column(sa.String(40))
    rule: Mapped[str | None] = mapped_column(sa.String(60))
    symbol: Mapped[str | None] = mapped_column(sa.String(64))
    message: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime]


metadata = Base.metadata
