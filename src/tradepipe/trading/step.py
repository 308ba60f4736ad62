"""One bar for one account: check the bar, reconcile with the broker, fill yesterday's decision, decide.

Order of work at bar t (the backtest's convention: decided at close t-1, filled at close t):
1. Refuse the bar (an event; nothing else changes, a later retry may pass) when a symbol is missing, a close
   is NaN or not positive, a close moved beyond the price band, the bar is duplicated, older than the last
   processed bar, or stale (the newest bar more than ``max_stale_sessions`` weekdays before ``now``).
2. Reconcile: the broker's positions and cash must equal the store's, counting fills of this bar's own
   orders the store has not recorded yet (a step killed after submitting). A mismatch halts the account.
3. Fill: the target decided at t-1 becomes orders sized at close t (``orders.size_orders``); fail-safes
   reject single orders; the rest go to the broker under deterministic client order ids, so a retry never
   sends an order twice. A fall in equity beyond ``daily_loss_limit`` halts the account.
4. Decide (unless halted): a pending model switch takes effect, the policy sees the real book and the
   stored risk state, and the target is recorded for the next bar.
All store writes of a step happen in one transaction at its end; broker calls before it are idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import Params
from tradepipe.core.types import Array
from tradepipe.trading.broker import Broker, BrokerFill, OrderRequest
from tradepipe.trading.decision import LiveMarket, decide, state_from_json, state_to_json
from tradepipe.trading.guard import Verdict, apply_guard, check
from tradepipe.trading.orders import Refusal, bar_refusals, order_refusals, size_orders
from tradepipe.trading.store import TradeStore, now_utc, utc
from tradepipe.trading.tables import Account, Decision, Equity, Event, Fill, Order, Position

__all__ = ["StepResult", "Trader", "client_order_id"]

PolicyLoader = Callable[[str, int], TradingPolicy]


@dataclass(frozen=True)
class StepResult:
    """What a step did: ``traded``, ``halted`` (marked to market, no decision), ``refused`` or ``already_done``."""

    account: str
    bar: pd.Timestamp
    status: str
    message: str
    equity: float | None = None
    orders: int = 0
    rejected: int = 0
    ood_score: float | None = None  # the OOD guard's score of the decided bar (None: no decision or no reference)
    flagged: bool = False           # the OOD guard flagged the decision (held the book or went to cash)


def client_order_id(account: str, bar: pd.Timestamp, symbol: str) -> str:
    """The deterministic id of an account's order for ``symbol`` at fill bar ``bar``."""
    return f"{account}:{bar.strftime('%Y%m%dT%H%M%S')}:{symbol}"


@dataclass
class _Book:
    cash: float
    shares: Array
    events: list[Event] = field(default_factory=list)


class Trader:
    """Steps accounts over canonical ``bars`` with ``broker``, recording everything in ``store``.

    The bars are indexed once as (timestamp, symbol) arrays; each account's :class:`LiveMarket` is kept between
    steps (rebuilt from the bars when the account, its model or its bars are not the ones it was advanced on).
    """

    def __init__(self, store: TradeStore, broker: Broker, bars: pd.DataFrame, params: Params,
                 load_policy: PolicyLoader) -> None:
        self.store, self.broker, self.params, self.load_policy = store, broker, params, load_policy
        self._policies: dict[tuple[str, int], TradingPolicy] = {}
        self._live: dict[str, tuple[tuple[object, ...], LiveMarket]] = {}
        self._bars: pd.DataFrame = bars
        self._added: list[pd.DataFrame] = []
        self.bars = bars

    @property
    def bars(self) -> pd.DataFrame:
        """The canonical bars the accounts trade on (sorted by timestamp, symbol)."""
        if self._added:
            self._bars = pd.concat([self._bars, *self._added], ignore_index=True)
            self._added = []
        return self._bars

    @bars.setter
    def bars(self, bars: pd.DataFrame) -> None:
        self._bars, self._added = bars, []
        self._live.clear()
        self.timestamps = pd.DatetimeIndex(sorted(bars["timestamp"].unique()))
        self.symbols = sorted(bars["symbol"].unique())
        rows = self.timestamps.get_indexer(bars["timestamp"])
        cols = pd.Index(self.symbols).get_indexer(bars["symbol"])
        counts = np.zeros((len(self.timestamps), len(self.symbols)), dtype=np.int64)
        np.add.at(counts, (rows, cols), 1)
        self._count = counts
        self._prices: dict[str, Array] = {}
        for column in ("close", "open", "high", "low", "volume"):
            if column in bars:
                wide = np.full(counts.shape, np.nan)
                wide[rows, cols] = bars[column].to_numpy(dtype=np.float64)
                self._prices[column] = wide
        self._row = {ts: i for i, ts in enumerate(self.timestamps)}
        self._col = {s: j for j, s in enumerate(self.symbols)}

    def close(self, symbol: str, bar: pd.Timestamp) -> float:
        """The close of ``symbol`` at ``bar`` (NaN when there is none): the paper broker's fill price."""
        i, j = self._row.get(bar), self._col.get(symbol)
        if i is None or j is None or self._count[i, j] != 1:  # a duplicated bar has no single close
            return float("nan")
        return float(self._prices["close"][i, j])

    def add_bars(self, bars: pd.DataFrame) -> None:
        """Append canonical ``bars`` (new (timestamp, symbol) rows) to the bars the accounts trade on."""
        new = bars.sort_values(["timestamp", "symbol"], kind="stable")
        stamps = pd.DatetimeIndex(new["timestamp"].unique())
        if (len(self.timestamps) and stamps.min() <= self.timestamps[-1]) or not set(new["symbol"]) <= set(self._col) \
                or new.duplicated(["timestamp", "symbol"]).any():
            self.bars = pd.concat([self.bars, bars], ignore_index=True).sort_values(["timestamp", "symbol"],
                                                                                    kind="stable")
            return
        rows = stamps.get_indexer(new["timestamp"]) + len(self.timestamps)
        cols = pd.Index(self.symbols).get_indexer(new["symbol"])
        grow = len(stamps)
        self._count = np.concatenate([self._count, np.zeros((grow, len(self.symbols)), dtype=np.int64)])
        self._count[rows, cols] = 1
        for column, wide in self._prices.items():
            wide = np.concatenate([wide, np.full((grow, len(self.symbols)), np.nan)])
            if column in new:
                wide[rows, cols] = new[column].to_numpy(dtype=np.float64)
            self._prices[column] = wide
        self._row.update({ts: i + len(self.timestamps) for i, ts in enumerate(stamps)})
        self.timestamps = self.timestamps.append(stamps)
        self._added.append(new)

    def known_closes(self, bars: pd.DataFrame) -> Array:
        """The close already held for each (timestamp, symbol) row of ``bars`` (NaN where none is)."""
        out = np.full(len(bars), np.nan)
        for k, (ts, symbol) in enumerate(zip(bars["timestamp"], bars["symbol"], strict=True)):
            i, j = self._row.get(ts), self._col.get(symbol)
            if i is not None and j is not None and self._count[i, j]:
                out[k] = self._prices["close"][i, j]
        return out

    def bars_at(self, bar: pd.Timestamp) -> pd.DataFrame:
        """The canonical rows at timestamp ``bar`` (timestamp, symbol, close)."""
        i = self._row.get(bar)
        if i is None:
            return pd.DataFrame({"timestamp": pd.DatetimeIndex([], tz="UTC"), "symbol": [], "close": []})
        have = self._count[i] > 0
        return pd.DataFrame({"timestamp": bar, "symbol": np.asarray(self.symbols)[have],
                             "close": self._prices["close"][i, have]})

    def policy(self, name: str, version: int) -> TradingPolicy:
        """The policy of a registered version (loaded once)."""
        if (name, version) not in self._policies:
            self._policies[(name, version)] = self.load_policy(name, version)
        return self._policies[(name, version)]

    def pending_bars(self, account: str, as_of: pd.Timestamp | None = None) -> list[pd.Timestamp]:
        """Bars after the account's last processed bar (from its first bar), up to ``as_of``."""
        with self.store.transaction() as session:
            acct = _account(session, account)
            last = session.scalar(sa.select(sa.func.max(Equity.bar)).where(Equity.account == account))
            start = utc(acct.first_bar)
        stamps = self.timestamps[self.timestamps >= start]
        if last is not None:
            stamps = stamps[stamps > utc(last)]
        if as_of is not None:
            stamps = stamps[stamps <= as_of]
        return list(stamps)

    def step(self, account: str, bar: pd.Timestamp, now: pd.Timestamp | None = None) -> StepResult:
        """Process ``bar`` for ``account`` (see the module doc); ``now`` is the wall clock for the staleness check."""
        with self.store.transaction() as session:
            acct = _account(session, account)
            done = session.get(Equity, (account, bar.to_pydatetime()))
            if done is not None:
                return StepResult(account, bar, "already_done", f"{account}: bar {bar.date()} was already processed")
            last_row = session.scalars(sa.select(Equity).where(Equity.account == account)
                                       .order_by(Equity.bar.desc()).limit(1)).first()
            symbols = [str(s) for s in acct.symbols]
            refusals = self._bar_refusals(acct, symbols, bar, last_row, now)
            if refusals:
                for r in refusals:
                    session.add(_event(account, bar, "refused_bar", r))
                return StepResult(account, bar, "refused", "; ".join(r.message for r in refusals))
            book = _Book(last_row.cash if last_row else acct.initial_cash, _shares(session, account, symbols))
            closes = self._closes(bar, symbols)
            cids = [client_order_id(account, bar, s) for s in symbols]
            mismatch = self._reconcile(session, acct, book, symbols, cids)
            if mismatch is not None:
                session.add(_event(account, bar, "reconciliation_mismatch", mismatch))
                if not acct.halted:
                    _halt(session, acct, bar, mismatch)
                return StepResult(account, bar, "halted", mismatch.message)
            equity_before = book.cash + float(book.shares @ closes)
            submitted, rejected = self._fill(session, acct, bar, book, closes, last_row, cids)
            equity = book.cash + float(book.shares @ closes)
            costs = float(session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Fill.cost), 0.0))
                                         .where(Fill.account == account, Fill.bar == bar.to_pydatetime())) or 0.0)
            traded = float(session.scalar(sa.select(sa.func.coalesce(sa.func.sum(sa.func.abs(Fill.qty * Fill.price)),
                                                                     0.0))
                                          .where(Fill.account == account, Fill.bar == bar.to_pydatetime())) or 0.0)
            loss = self.params.trading.daily_loss_limit
            if (last_row is not None and loss is not None and not acct.halted
                    and equity < last_row.equity * (1.0 - loss)):
                _halt(session, acct, bar, Refusal("daily_loss_limit", None,
                      f"equity fell {1 - equity / last_row.equity:.1%} in one bar, beyond trading.daily_loss_limit "
                      f"{loss:.0%}: the kill switch is engaged (`tradepipe trade resume {account}` to trade again)"))
            session.add(Equity(account=account, bar=bar.to_pydatetime(), cash=book.cash, equity=equity,
                               gross_exposure=float(np.abs(book.shares * closes).sum()) / equity if equity else 0.0,
                               turnover=traded / equity_before if equity_before else 0.0, costs=costs,
                               model_version=acct.model_version, created_at=now_utc()))
            if acct.halted:
                return StepResult(account, bar, "halted", f"{account} is halted: marked to market, no decision",
                                  equity, submitted, rejected)
            verdict = self._decide(session, acct, bar, book, closes, equity)
            guarded = f"; {verdict.message}" if verdict.flagged else ""
            return StepResult(account, bar, "traded", f"{account}: bar {bar.date()} equity {equity:,.2f}, "
                              f"{submitted} orders filled, {rejected} rejected{guarded}", equity, submitted, rejected,
                              verdict.outlier.score if verdict.outlier else None, verdict.flagged)

    def _bar_refusals(self, acct: Account, symbols: list[str], bar: pd.Timestamp, last_row: Equity | None,
                      now: pd.Timestamp | None) -> list[Refusal]:
        i = self._row.get(bar)
        counts = self._count[i] if i is not None else np.zeros(len(self.symbols), dtype=np.int64)
        if (counts > 1).any():
            return [Refusal("duplicate_bar", s, f"{s} has {n} rows at {bar}")
                    for s, n in zip(self.symbols, counts.tolist(), strict=True) if n > 1]
        missing = sorted(s for s in symbols if s not in self._col or not counts[self._col[s]])
        if missing:
            return [Refusal("symbol_missing", s, f"no bar for {s} at {bar}") for s in missing]
        if last_row is not None and bar <= utc(last_row.bar):
            return [Refusal("bar_out_of_order", None, f"bar {bar} is not after the last processed bar "
                            f"{utc(last_row.bar)}")]
        if bar < utc(acct.first_bar):
            return [Refusal("before_opening", None, f"bar {bar} is before the first bar {utc(acct.first_bar)}")]
        limit = self.params.trading.max_stale_sessions
        newest = self.timestamps[-1]
        age = int(np.busday_count(newest.date(), now.date())) if now is not None else 0
        if age > limit:
            return [Refusal("stale_data", None, f"the newest bar ({newest.date()}) is {age} weekdays old, more than "
                            f"trading.max_stale_sessions={limit}: ingest new bars first")]
        last_closes = self._closes(utc(last_row.bar), symbols) if last_row is not None else None
        return bar_refusals(symbols, self._closes(bar, symbols), last_closes, self.params.trading)

    def _closes(self, bar: pd.Timestamp, symbols: list[str]) -> Array:
        i = self._row.get(bar)
        if i is None:
            return np.full(len(symbols), np.nan)
        return self._prices["close"][i, [self._col[s] for s in symbols]]

    def _reconcile(self, session: Session, acct: Account, book: _Book, symbols: list[str],
                   cids: list[str]) -> Refusal | None:
        recorded = {f.broker_fill_id for f in session.scalars(sa.select(Fill).where(Fill.client_order_id.in_(cids)))}
        in_flight = [f for f in self.broker.fills(acct.name, cids) if f.fill_id not in recorded]
        expected = dict(zip(symbols, book.shares.tolist(), strict=True))
        cash = book.cash
        for f in in_flight:
            expected[f.symbol] = expected.get(f.symbol, 0.0) + f.qty
            cash -= f.qty * f.price + f.cost
        held = self.broker.positions(acct.name)
        tol = self.params.trading.reconcile_tolerance
        off = {s: (expected.get(s, 0.0), held.get(s, 0.0)) for s in set(expected) | set(held)
               if abs(expected.get(s, 0.0) - held.get(s, 0.0)) > tol}
        broker_cash = self.broker.cash(acct.name)
        if off or abs(broker_cash - cash) > tol * max(1.0, abs(cash)):
            detail = ", ".join(f"{s}: store {a:g} vs broker {b:g}" for s, (a, b) in sorted(off.items()))
            return Refusal("reconciliation", None, f"broker and trade store disagree ({detail or 'positions agree'}; "
                           f"cash store {cash:,.2f} vs broker {broker_cash:,.2f}): the account is halted")
        return None

    def _fill(self, session: Session, acct: Account, bar: pd.Timestamp, book: _Book, closes: Array,
              last_row: Equity | None, cids: list[str]) -> tuple[int, int]:
        previous = session.scalars(sa.select(Decision).where(Decision.account == acct.name,
                                                             Decision.bar == last_row.bar)).first() \
            if last_row is not None else None
        if previous is None or acct.halted or previous.guard == "hold":  # the OOD guard held the book: no orders
            return 0, 0
        symbols = [str(s) for s in acct.symbols]
        tp = self.params.trading
        target = np.asarray(previous.target[:-1], dtype=np.float64)
        qty = size_orders(target, book.shares, book.cash, closes, self.params.costs.rate, tp)
        equity = book.cash + float(book.shares @ closes)
        k = self.params.costs.rate * float(np.abs(qty * closes).sum()) / equity if equity else 0.0
        refused = order_refusals(symbols, qty, book.shares, closes, equity * (1.0 - k), tp)
        orders: list[dict[str, object]] = []
        requests: list[OrderRequest] = []
        created = now_utc()
        for i in np.flatnonzero(qty):
            order: dict[str, object] = {
                "client_order_id": cids[i], "account": acct.name, "decision_id": previous.id,
                "bar": bar.to_pydatetime(), "symbol": symbols[i], "qty": float(qty[i]), "price": float(closes[i]),
                "status": "new", "reason": None, "created_at": created}
            if int(i) in refused:
                order["status"], order["reason"] = "rejected", refused[int(i)].message
                session.add(_event(acct.name, bar, "rejection", refused[int(i)]))
            else:
                requests.append(OrderRequest(cids[i], symbols[i], float(qty[i]), bar))
            orders.append(order)
        answers = {a.client_order_id: a for a in self.broker.submit_many(acct.name, requests)} if requests else {}
        for order in orders:
            answer = answers.get(str(order["client_order_id"]))
            if answer is not None:
                order["status"], order["reason"] = answer.status, answer.reason
        if orders:
            session.execute(sa.insert(Order), orders)  # one statement for the step's orders
        sent = [r.client_order_id for r in requests]
        recorded = {f.broker_fill_id for f in session.scalars(sa.select(Fill).where(Fill.client_order_id.in_(sent)))}
        held = {p.symbol: p for p in session.scalars(sa.select(Position).where(Position.account == acct.name))}
        fills = [_apply(session, acct.name, book, symbols, f, held) for f in self.broker.fills(acct.name, sent)
                 if f.fill_id not in recorded]
        if fills:
            session.execute(sa.insert(Fill), fills)
        return len(sent), len(refused)

    def _decide(self, session: Session, acct: Account, bar: pd.Timestamp, book: _Book, closes: Array,
                equity: float) -> Verdict:
        if acct.pending_version is not None and acct.pending_version != acct.model_version:
            session.add(Event(account=acct.name, bar=bar.to_pydatetime(), kind="model_switch", rule=None, symbol=None,
                              message=f"{acct.model_name} version {acct.model_version} -> {acct.pending_version}",
                              created_at=now_utc()))
            acct.model_version, acct.pending_version = acct.pending_version, None
        policy = self.policy(acct.model_name, acct.model_version)
        previous = session.scalars(sa.select(Decision).where(Decision.account == acct.name)
                                   .order_by(Decision.bar.desc()).limit(1)).first()
        state = state_from_json(previous.risk_state if previous else {}, len(book.shares))
        weights = book.shares * closes / equity
        held = np.append(weights, 1.0 - weights.sum())
        live = self._live_market(acct, policy, bar)
        market = live.market
        decided = decide(policy, market, held, equity / acct.initial_cash, state, live.risk)
        verdict = check(policy, market, self.params.trading)
        if verdict.flagged:
            decided = apply_guard(decided, held, verdict, self.params.trading)
            session.add(_event(acct.name, bar, "ood", Refusal("ood_threshold", None, verdict.message)))
        session.add(Decision(account=acct.name, bar=bar.to_pydatetime(), model_name=acct.model_name,
                             model_version=acct.model_version, proposed=decided.proposed.tolist(),
                             target=decided.target.tolist(), risk_state=state_to_json(decided.state),
                             created_at=now_utc(), ood_score=verdict.outlier.score if verdict.outlier else None,
                             guard=self.params.trading.ood_action if verdict.flagged else None))
        return verdict

    def _live_market(self, acct: Account, policy: TradingPolicy, bar: pd.Timestamp) -> LiveMarket:
        """The account's market state at ``bar``: the kept one advanced by one bar, else built from its window."""
        key = (utc(acct.anchor), acct.model_name, acct.model_version, tuple(policy.spec.symbols))
        kept = self._live.get(acct.name)
        i = self._row[bar]
        cols = [self._col[s] for s in policy.spec.symbols] if set(policy.spec.symbols) <= set(self._col) else None
        if kept is not None and kept[0] == key and cols is not None and i > 0 \
                and kept[1].last == self.timestamps[i - 1]:
            live = kept[1]
            live.advance(bar, {c: v[i, cols] for c, v in self._prices.items()}, self._count[i, cols] > 0)
            return live
        start = int(self.timestamps.searchsorted(utc(acct.anchor)))
        stamps = self.timestamps[start:i + 1]
        bars = self.bars
        window = bars[(bars["timestamp"] >= stamps[0]) & (bars["timestamp"] <= bar)]
        if cols is None:
            raise ValueError(f"the policy trades {policy.spec.symbols}; the data holds {self.symbols}")
        live = LiveMarket(policy, window, stamps, {c: v[start:i + 1][:, cols] for c, v in self._prices.items()},
                          self._count[start:i + 1][:, cols] > 0)
        self._live[acct.name] = (key, live)
        return live


def _account(session: Session, name: str) -> Account:
    acct = session.get(Account, name)
    if acct is None:
        known = ", ".join(session.scalars(sa.select(Account.name))) or "none"
        raise KeyError(f"no paper account {name!r} (accounts: {known}); open one with `tradepipe trade open {name}`")
    return acct


def _shares(session: Session, account: str, symbols: list[str]) -> Array:
    held = {p.symbol: p.qty for p in session.scalars(sa.select(Position).where(Position.account == account))}
    return np.array([held.get(s, 0.0) for s in symbols], dtype=np.float64)


def _apply(session: Session, account: str, book: _Book, symbols: list[str], f: BrokerFill,
           held: dict[str, Position]) -> dict[str, object]:
    """Apply fill ``f`` to the book and the position rows; the fill's row to insert."""
    i = symbols.index(f.symbol)
    book.shares[i] += f.qty
    book.cash -= f.qty * f.price + f.cost
    position = held.get(f.symbol)
    if position is None:
        held[f.symbol] = Position(account=account, symbol=f.symbol, qty=float(book.shares[i]))
        session.add(held[f.symbol])
    else:
        position.qty = float(book.shares[i])
    return {"broker_fill_id": f.fill_id, "account": account, "client_order_id": f.client_order_id,
            "bar": f.bar.to_pydatetime(), "symbol": f.symbol, "qty": f.qty, "price": f.price, "cost": f.cost,
            "created_at": now_utc()}


def _halt(session: Session, acct: Account, bar: pd.Timestamp | None, why: Refusal) -> None:
    acct.halted = True
    session.add(_event(acct.name, bar, "halt", why))


def _event(account: str, bar: pd.Timestamp | None, kind: str, why: Refusal) -> Event:
    return Event(account=account, bar=bar.to_pydatetime() if bar is not None else None, kind=kind, rule=why.rule,
                 symbol=why.symbol, message=why.message, created_at=now_utc())
