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
All store writes of a step happen in one transaction, after the decision is computed (the write lock is held for
the writes alone); broker calls before it are idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import Params
from tradepipe.core.types import Array
from tradepipe.trading.broker import Broker, BrokerFill, OrderRequest, SimulatedBroker
from tradepipe.trading.decision import BarRows, LiveMarket, Rows, decide, state_from_json, state_to_json
from tradepipe.trading.guard import Verdict, apply_guard, check
from tradepipe.trading.orders import Refusal, bar_refusals, order_refusals, size_orders
from tradepipe.trading.posted import PostedBars
from tradepipe.trading.store import TradeStore, now_utc, utc
from tradepipe.trading.tables import Account, Decision, Equity, Event, Fill, Order, Position

__all__ = ["AccountBook", "KeptDecision", "MarketAhead", "StepResult", "Trader", "client_order_ids"]

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


@dataclass(frozen=True)
class MarketAhead:
    """An account's next bar, whose market rows another process can compute while the account's step runs there
    (``Trader.market_ahead``); ``key`` is its market state's key, None until the trader has loaded the policy."""

    acct: _Acct                     # the account's row, with the model version it decides the bar with
    bar: pd.Timestamp
    key: tuple[object, ...] | None
    ready: bool                     # a state of the key is at the bar before (or has the bar's rows): an advance


def client_order_ids(account: str, bar: pd.Timestamp, symbols: list[str]) -> list[str]:
    """The deterministic ids of an account's orders for ``symbols`` at fill bar ``bar``."""
    prefix = f"{account}:{bar.strftime('%Y%m%dT%H%M%S')}:"
    return [prefix + symbol for symbol in symbols]


@dataclass
class _Book:
    cash: float
    shares: Array
    events: list[Event] = field(default_factory=list)


class Trader:
    """Steps accounts over canonical ``bars`` with ``broker``, recording everything in ``store``.

    The bars are indexed once as wide (timestamp, symbol) arrays, with room for new bars. Each account's market
    state (:class:`LiveMarket`) is kept between steps and shared with the accounts it is the same for (one anchor,
    model version and universe: the state depends on nothing else), so accounts stepping the same bar advance it
    once; at most one state per account is kept, rebuilt from the bars when none of its key is at the bar or the one
    before. The states of a key share their bar rows (:class:`~tradepipe.trading.decision.BarRows`): accounts a few
    bars apart compute a bar's features, forecast and turbulence once, the first to reach it.
    """

    def __init__(self, store: TradeStore, broker: Broker, bars: pd.DataFrame, params: Params,
                 load_policy: PolicyLoader) -> None:
        self.store, self.broker, self.params, self.load_policy = store, broker, params, load_policy
        self._policies: dict[tuple[str, int], TradingPolicy] = {}
        self._live: dict[str, tuple[tuple[object, ...], LiveMarket]] = {}  # account -> (market key, its state)
        self._shared: dict[tuple[object, ...], BarRows] = {}  # market key -> the bar rows its states share
        self._kept: dict[str, _Kept] = {}
        self._accounts: set[str] = set()
        self._bars: pd.DataFrame = bars
        self._added: list[PostedBars] = []
        self.bars = bars

    @property
    def bars(self) -> pd.DataFrame:
        """The canonical bars the accounts trade on (sorted by timestamp, symbol)."""
        if self._added:  # later timestamps than the table's, each (timestamp, symbol) once: sorted, then appended
            added = pd.concat([b.frame() for b in self._added]).sort_values(["timestamp", "symbol"], kind="stable")
            self._bars = pd.concat([self._bars, added], ignore_index=True)
            self._added = []
        return self._bars

    @bars.setter
    def bars(self, bars: pd.DataFrame) -> None:
        self._bars, self._added = bars, []
        self._live.clear()
        self._shared.clear()
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

    def engines(self) -> list[sa.Engine]:
        """The database engines it writes: the trade store's and the paper broker's ledger."""
        return [self.store.engine, *([self.broker.engine] if isinstance(self.broker, SimulatedBroker) else [])]

    def close(self, symbol: str, bar: pd.Timestamp) -> float:
        """The close of ``symbol`` at ``bar`` (NaN when there is none): the paper broker's fill price."""
        i, j = self._row.get(bar), self._col.get(symbol)
        if i is None or j is None or self._count[i, j] != 1:  # a duplicated bar has no single close
            return float("nan")
        return float(self._prices["close"][i, j])

    def add_bars(self, bars: PostedBars) -> None:
        """Append posted ``bars`` (new (timestamp, symbol) rows) to the bars the accounts trade on."""
        keys = list(zip(bars.timestamps, bars.symbols, strict=True))
        if not keys:
            return
        stamps = sorted(set(bars.timestamps))
        if (len(self.timestamps) and stamps[0] <= self.timestamps[-1]) or len(set(keys)) != len(keys) \
                or not set(bars.symbols) <= self._col.keys():
            self.bars = pd.concat([self.bars, bars.frame()], ignore_index=True).sort_values(["timestamp", "symbol"],
                                                                                           kind="stable")
            return
        row = {ts: len(self.timestamps) + k for k, ts in enumerate(stamps)}
        rows = np.fromiter((row[ts] for ts, _ in keys), dtype=np.int64, count=len(keys))
        cols = np.fromiter((self._col[s] for _, s in keys), dtype=np.int64, count=len(keys))
        self._make_room(len(stamps))
        self._count[rows, cols] = 1
        for column, wide in self._prices.items():
            if column in bars.values:
                wide[rows, cols] = bars.values[column]
        self._row.update(row)
        self.timestamps = self.timestamps.append(pd.DatetimeIndex(stamps))
        self._added.append(bars)  # sorted when the long table is next asked for

    def _make_room(self, rows: int) -> None:
        """Room for ``rows`` bars after the last in the wide arrays (rows past the last bar are empty: no count, NaN
        prices); when full they double, so a new bar's append copies nothing."""
        n = len(self.timestamps)
        if n + rows <= len(self._count):
            return
        spare = (max(2 * n, n + rows, 64) - n, len(self.symbols))
        self._count = np.concatenate([self._count[:n], np.zeros(spare, dtype=np.int64)])
        self._prices = {c: np.concatenate([v[:n], np.full(spare, np.nan)]) for c, v in self._prices.items()}

    def known_closes(self, bars: PostedBars) -> Array:
        """The close already held for each of the posted ``bars`` (NaN where none is)."""
        out = np.full(len(bars), np.nan)
        close = self._prices["close"]
        for k, (ts, symbol) in enumerate(zip(bars.timestamps, bars.symbols, strict=True)):
            i, j = self._row.get(ts), self._col.get(symbol)
            if i is not None and j is not None and self._count[i, j]:
                out[k] = close[i, j]
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
        with self.store.begin() as conn:
            return self._pending(_read_account(conn, account), as_of)

    def _pending(self, acct: _Acct, as_of: pd.Timestamp | None) -> list[pd.Timestamp]:
        stamps = self.timestamps
        start = int(stamps.searchsorted(acct.first_bar, side="left"))
        if acct.last_bar is not None:
            start = max(start, int(stamps.searchsorted(acct.last_bar, side="right")))
        end = len(stamps) if as_of is None else int(stamps.searchsorted(as_of, side="right"))
        return list(stamps[start:end])

    def has_account(self, account: str) -> bool:
        """Whether the trade store has ``account`` (accounts are never deleted: a known one is not asked again)."""
        if account in self._accounts:
            return True
        with self.store.begin() as conn:
            found = conn.execute(_HAS_ACCOUNT, {"name": account}).first() is not None
        if found:
            self._accounts.add(account)
        return found

    def step_through(self, account: str, as_of: pd.Timestamp, now: pd.Timestamp | None = None
                     ) -> tuple[list[StepResult], AccountBook]:
        """Step every pending bar up to ``as_of`` (``pending_bars``, then ``step`` for each), and the book after
        (its newest decision): the pending bars are read in the first bar's transaction."""
        return self._steps(account, lambda acct: self._pending(acct, as_of), now)

    def _steps(self, account: str, bars: Callable[[_Acct], list[pd.Timestamp]], now: pd.Timestamp | None
               ) -> tuple[list[StepResult], AccountBook]:
        """One transaction per bar of ``bars(account row)``: the account row and the kept book read, the step
        written; the book after the last (the kept book, current when the account row says so)."""
        results: list[StepResult] = []
        todo: list[pd.Timestamp] | None = None
        while todo is None or todo:
            with self.store.begin() as conn:
                acct = _read_account(conn, account)
                kept = self._kept_book(conn, acct)
                if todo is None:
                    todo = bars(acct)
                    if not todo:
                        break
                result, after = self._step(conn, acct, kept, todo.pop(0), now)
            if after is not None:  # committed: the kept book moves to this bar
                self._kept[account] = kept = after
            results.append(result)
        return results, AccountBook(acct.name, acct.model_name, acct.model_version, acct.halted, acct.symbols,
                                    kept.last_bar, kept.cash,
                                    kept.equity if kept.equity is not None else acct.initial_cash, kept.peak,
                                    kept.gross, kept.latest)

    def _kept_book(self, conn: sa.Connection, acct: _Acct) -> _Kept:
        """The account's kept book, read from the store when absent or when another process stepped it since."""
        kept = self._kept.get(acct.name)
        if kept is not None and kept.last_bar == acct.last_bar:
            return kept
        kept = _load_book(conn, acct)
        self._kept[acct.name] = kept
        return kept

    def step(self, account: str, bar: pd.Timestamp, now: pd.Timestamp | None = None) -> StepResult:
        """Process ``bar`` for ``account`` (see the module doc); ``now`` is the wall clock for the staleness check."""
        return self._steps(account, lambda _acct: [bar], now)[0][0]

    def market_ahead(self, account: str, as_of: pd.Timestamp) -> MarketAhead | None:
        """The account's next bar when it is the only one pending up to ``as_of`` and the account decides there (not
        halted), for its market rows to be computed ahead of its step (``market_rows``)."""
        with self.store.begin() as conn:
            acct = _read_account(conn, account)
        pending = self._pending(acct, as_of)
        if acct.halted or len(pending) != 1:
            return None
        if acct.pending_version is not None:  # the step switches first
            acct = replace(acct, model_version=acct.pending_version, pending_version=None)
        bar, policy = pending[0], self._policies.get((acct.model_name, acct.model_version))
        if policy is None:
            return MarketAhead(acct, bar, None, False)
        key = self._market_key(acct, policy)
        ready = self._held(key, self._bar_before(bar)) is not None or self.bar_rows(key).get(bar) is not None
        return MarketAhead(acct, bar, key, ready)

    def market_rows(self, ahead: MarketAhead) -> Rows | None:
        """The market rows of ``ahead.bar`` as the account's step computes them, by this trader's state of its key
        (advanced; None when the state had to be built, whose newest bar keeps no rows)."""
        policy = self.policy(ahead.acct.model_name, ahead.acct.model_version)
        self._live_market(ahead.acct, policy, ahead.bar)
        return self.bar_rows(self._market_key(ahead.acct, policy)).get(ahead.bar)

    def bar_rows(self, key: tuple[object, ...]) -> BarRows:
        """The bar rows the market states of ``key`` share."""
        return self._shared.setdefault(key, BarRows())

    def _step(self, conn: sa.Connection, acct: _Acct, kept: _Kept, bar: pd.Timestamp, now: pd.Timestamp | None
              ) -> tuple[StepResult, _Kept | None]:
        account = acct.name
        if kept.last_bar is not None and bar <= kept.last_bar and conn.execute(
                _DONE, {"account": account, "bar": bar.to_pydatetime()}).first() is not None:
            return StepResult(account, bar, "already_done", f"{account}: bar {bar.date()} was already processed"), None
        symbols = acct.symbols
        refusals = self._bar_refusals(acct, symbols, bar, kept.last_bar, now)
        if refusals:
            _insert_events(conn, [_event(account, bar, "refused_bar", r) for r in refusals])
            return StepResult(account, bar, "refused", "; ".join(r.message for r in refusals)), None
        held = dict(kept.positions)
        book = _Book(kept.cash, np.array([held.get(s, 0.0) for s in symbols], dtype=np.float64))
        closes = self._closes(bar, symbols)
        cids = client_order_ids(account, bar, symbols)
        mismatch = self._reconcile(conn, acct, book, symbols, cids)
        if mismatch is not None:
            events = [_event(account, bar, "reconciliation_mismatch", mismatch)]
            if not acct.halted:
                events.append(_halt(conn, acct, bar, mismatch))
            _insert_events(conn, events)
            return StepResult(account, bar, "halted", mismatch.message), None
        equity_before = book.cash + float(book.shares @ closes)
        writes = _Writes()  # the rest of the step's writes, run at its end
        submitted, rejected, fills = self._fill(writes, acct, bar, book, closes, kept, cids, held)
        equity = book.cash + float(book.shares @ closes)
        costs = float(sum(f.cost for f in fills))  # this bar's fills: the store holds no others at this bar
        traded = float(sum(abs(f.qty * f.price) for f in fills))
        loss = self.params.trading.daily_loss_limit
        if (kept.equity is not None and loss is not None and not acct.halted
                and equity < kept.equity * (1.0 - loss)):
            _insert_events(writes, [_halt(writes, acct, bar, Refusal(
                "daily_loss_limit", None, f"equity fell {1 - equity / kept.equity:.1%} in one bar, beyond "
                f"trading.daily_loss_limit {loss:.0%}: the kill switch is engaged (`tradepipe trade resume "
                f"{account}` to trade again)"))])
        gross = float(np.abs(book.shares * closes).sum()) / equity if equity else 0.0
        writes.execute(_EQUITY, {"account": account, "bar": bar.to_pydatetime(), "cash": book.cash, "equity": equity,
                                 "gross_exposure": gross,
                                 "turnover": traded / equity_before if equity_before else 0.0, "costs": costs,
                                 "model_version": acct.model_version, "created_at": now_utc()})
        after = _Kept(bar, book.cash, equity, gross, held, None, kept.latest, max(kept.peak, equity))
        if acct.halted:
            writes.run(conn)
            return StepResult(account, bar, "halted", f"{account} is halted: marked to market, no decision",
                              equity, submitted, rejected), after
        verdict, row = self._decide(writes, acct, bar, book, closes, equity, kept)
        writes.run(conn)
        key = conn.execute(_DECISION, row).inserted_primary_key
        assert key is not None
        after.at_last = after.latest = KeptDecision(
            int(key[0]), bar, row["target"], row["guard"], row["risk_state"], row["ood_score"])
        guarded = f"; {verdict.message}" if verdict.flagged else ""
        return StepResult(account, bar, "traded", f"{account}: bar {bar.date()} equity {equity:,.2f}, "
                          f"{submitted} orders filled, {rejected} rejected{guarded}", equity, submitted, rejected,
                          verdict.outlier.score if verdict.outlier else None, verdict.flagged), after

    def _bar_refusals(self, acct: _Acct, symbols: list[str], bar: pd.Timestamp, last: pd.Timestamp | None,
                      now: pd.Timestamp | None) -> list[Refusal]:
        i = self._row.get(bar)
        counts = self._count[i] if i is not None else np.zeros(len(self.symbols), dtype=np.int64)
        if (counts > 1).any():
            return [Refusal("duplicate_bar", s, f"{s} has {n} rows at {bar}")
                    for s, n in zip(self.symbols, counts.tolist(), strict=True) if n > 1]
        missing = sorted(s for s in symbols if s not in self._col or not counts[self._col[s]])
        if missing:
            return [Refusal("symbol_missing", s, f"no bar for {s} at {bar}") for s in missing]
        if last is not None and bar <= last:
            return [Refusal("bar_out_of_order", None, f"bar {bar} is not after the last processed bar {last}")]
        if bar < acct.first_bar:
            return [Refusal("before_opening", None, f"bar {bar} is before the first bar {acct.first_bar}")]
        limit = self.params.trading.max_stale_sessions
        newest = self.timestamps[-1]
        age = int(np.busday_count(newest.date(), now.date())) if now is not None else 0
        if age > limit:
            return [Refusal("stale_data", None, f"the newest bar ({newest.date()}) is {age} weekdays old, more than "
                            f"trading.max_stale_sessions={limit}: ingest new bars first")]
        last_closes = self._closes(last, symbols) if last is not None else None
        return bar_refusals(symbols, self._closes(bar, symbols), last_closes, self.params.trading)

    def _closes(self, bar: pd.Timestamp, symbols: list[str]) -> Array:
        i = self._row.get(bar)
        if i is None:
            return np.full(len(symbols), np.nan)
        return self._prices["close"][i, [self._col[s] for s in symbols]]

    def _reconcile(self, conn: sa.Connection, acct: _Acct, book: _Book, symbols: list[str],
                   cids: list[str]) -> Refusal | None:
        """A mismatch between the broker and the store (None: they agree). The store records a bar's fills only in
        the transaction that writes the bar's equity row, and this bar is after the last one: every broker fill of
        this bar's orders is in flight (a step killed after submitting)."""
        held, broker_cash, in_flight = self.broker.ledger(acct.name, cids)
        expected = dict(zip(symbols, book.shares.tolist(), strict=True))
        cash = book.cash
        for f in in_flight:
            expected[f.symbol] = expected.get(f.symbol, 0.0) + f.qty
            cash -= f.qty * f.price + f.cost
        tol = self.params.trading.reconcile_tolerance
        off = {s: (expected.get(s, 0.0), held.get(s, 0.0)) for s in set(expected) | set(held)
               if abs(expected.get(s, 0.0) - held.get(s, 0.0)) > tol}
        if off or abs(broker_cash - cash) > tol * max(1.0, abs(cash)):
            detail = ", ".join(f"{s}: store {a:g} vs broker {b:g}" for s, (a, b) in sorted(off.items()))
            return Refusal("reconciliation", None, f"broker and trade store disagree ({detail or 'positions agree'}; "
                           f"cash store {cash:,.2f} vs broker {broker_cash:,.2f}): the account is halted")
        return None

    def _fill(self, writes: _Writes, acct: _Acct, bar: pd.Timestamp, book: _Book, closes: Array, kept: _Kept,
              cids: list[str], held: dict[str, float]) -> tuple[int, int, list[BrokerFill]]:
        """Orders to the decision at the last bar's target; the fills applied to ``book`` and ``held`` (the
        position rows), their rows added to ``writes``; (orders sent, orders rejected, the new fills)."""
        previous = kept.at_last
        if previous is None or acct.halted or previous.guard == "hold":  # the OOD guard held the book: no orders
            return 0, 0, []
        symbols = acct.symbols
        tp = self.params.trading
        target = np.asarray(previous.target[:-1], dtype=np.float64)
        qty = size_orders(target, book.shares, book.cash, closes, self.params.costs.rate, tp)
        equity = book.cash + float(book.shares @ closes)
        k = self.params.costs.rate * float(np.abs(qty * closes).sum()) / equity if equity else 0.0
        refused = order_refusals(symbols, qty, book.shares, closes, equity * (1.0 - k), tp)
        orders: list[dict[str, object]] = []
        requests: list[OrderRequest] = []
        events: list[dict[str, object]] = []
        created = now_utc()
        for i in np.flatnonzero(qty):
            order: dict[str, object] = {
                "client_order_id": cids[i], "account": acct.name, "decision_id": previous.id,
                "bar": bar.to_pydatetime(), "symbol": symbols[i], "qty": float(qty[i]), "price": float(closes[i]),
                "status": "new", "reason": None, "created_at": created}
            if int(i) in refused:
                order["status"], order["reason"] = "rejected", refused[int(i)].message
                events.append(_event(acct.name, bar, "rejection", refused[int(i)]))
            else:
                requests.append(OrderRequest(cids[i], symbols[i], float(qty[i]), bar))
            orders.append(order)
        _insert_events(writes, events)
        answers = {a.client_order_id: a for a in self.broker.submit_many(acct.name, requests)} if requests else {}
        for order in orders:
            answer = answers.get(str(order["client_order_id"]))
            if answer is not None:
                order["status"], order["reason"] = answer.status, answer.reason
        if orders:
            writes.execute(_ORDERS, orders)  # one statement for the step's orders
        sent = [r.client_order_id for r in requests]
        new = [f for a in answers.values() for f in a.fills]  # none recorded yet (see _reconcile)
        index = {s: i for i, s in enumerate(symbols)}
        fills: list[dict[str, object]] = []
        inserted: dict[str, float] = {}
        updated: dict[str, float] = {}
        for f in new:
            j = index[f.symbol]
            book.shares[j] += f.qty
            book.cash -= f.qty * f.price + f.cost
            (updated if f.symbol in held else inserted)[f.symbol] = float(book.shares[j])
            fills.append({"broker_fill_id": f.fill_id, "account": acct.name, "client_order_id": f.client_order_id,
                          "bar": f.bar.to_pydatetime(), "symbol": f.symbol, "qty": f.qty, "price": f.price,
                          "cost": f.cost, "created_at": now_utc()})
        if fills:
            writes.execute(_FILLS, fills)
        if inserted:
            writes.execute(_POSITION_NEW, [{"account": acct.name, "symbol": s, "qty": q} for s, q in inserted.items()])
        if updated:
            writes.execute(_POSITION_SET, [{"a": acct.name, "s": s, "q": q} for s, q in updated.items()])
        held.update(inserted)
        held.update(updated)
        return len(sent), len(refused), new

    def _decide(self, writes: _Writes, acct: _Acct, bar: pd.Timestamp, book: _Book, closes: Array,
                equity: float, kept: _Kept) -> tuple[Verdict, dict[str, Any]]:
        """The decision at ``bar`` (a pending model switch first): the guard's verdict and the decision's row."""
        if acct.pending_version is not None and acct.pending_version != acct.model_version:
            _insert_events(writes, [{"account": acct.name, "bar": bar.to_pydatetime(), "kind": "model_switch",
                                   "rule": None, "symbol": None, "created_at": now_utc(),
                                   "message": f"{acct.model_name} version {acct.model_version} -> "
                                              f"{acct.pending_version}"}])
            acct.model_version, acct.pending_version = acct.pending_version, None
            writes.execute(_ACCOUNT_SET, {"account": acct.name, "model_version": acct.model_version,
                                          "pending_version": None})
        policy = self.policy(acct.model_name, acct.model_version)
        previous = kept.latest
        state = state_from_json(previous.risk_state if previous else {}, len(book.shares))
        weights = book.shares * closes / equity
        held = np.append(weights, 1.0 - weights.sum())
        live = self._live_market(acct, policy, bar)
        market = live.market
        decided = decide(policy, market, held, equity / acct.initial_cash, state, live.risk)
        verdict = check(policy, market, self.params.trading)
        if verdict.flagged:
            decided = apply_guard(decided, held, verdict, self.params.trading)
            _insert_events(writes, [_event(acct.name, bar, "ood", Refusal("ood_threshold", None, verdict.message))])
        target, risk_state = decided.target.tolist(), state_to_json(decided.state)
        score = verdict.outlier.score if verdict.outlier else None
        guard = self.params.trading.ood_action if verdict.flagged else None
        return verdict, {"account": acct.name, "bar": bar.to_pydatetime(), "model_name": acct.model_name,
                         "model_version": acct.model_version, "proposed": decided.proposed.tolist(), "target": target,
                         "risk_state": risk_state, "created_at": now_utc(), "ood_score": score, "guard": guard}

    def _live_market(self, acct: _Acct, policy: TradingPolicy, bar: pd.Timestamp) -> LiveMarket:
        """The market state of ``acct`` at ``bar``: one of its key already at ``bar`` (another account decided it),
        else one of its key at the bar before, advanced by one bar, else one built from its window.

        A state another account holds is copied before it is advanced (tens of microseconds, not the ~100 ms of a
        rebuild): that account stays at its bar, where it looks for its next state, however far this one runs on."""
        symbols = policy.spec.symbols
        if not set(symbols) <= self._col.keys():
            raise ValueError(f"the policy trades {symbols}; the data holds {self.symbols}")
        key = self._market_key(acct, policy)
        i, cols = self._row[bar], [self._col[s] for s in symbols]
        live = self._held(key, bar)  # the account's own among those looked at
        if live is None:
            live = self._held(key, self._bar_before(bar))
            if live is None:
                live = self._build_market(acct, policy, i, cols, self.bar_rows(key))
            else:
                if any(held is live for a, (_, held) in self._live.items() if a != acct.name):
                    live = live.copy()
                try:
                    live.advance(bar, {c: v[i, cols] for c, v in self._prices.items()}, self._count[i, cols] > 0)
                except BaseException:  # a half-advanced state says it is at ``bar``: no account may find it
                    self._live = {a: kept for a, kept in self._live.items() if kept[1] is not live}
                    raise
        self._live[acct.name] = (key, live)
        return live

    def _held(self, key: tuple[object, ...], bar: pd.Timestamp | None) -> LiveMarket | None:
        """A kept market state of ``key`` at ``bar`` (None: none is)."""
        return next((live for k, live in self._live.values() if k == key and live.last == bar), None)

    def _bar_before(self, bar: pd.Timestamp) -> pd.Timestamp | None:
        i = self._row[bar]
        return self.timestamps[i - 1] if i > 0 else None

    @staticmethod
    def _market_key(acct: _Acct, policy: TradingPolicy) -> tuple[object, ...]:
        """What a market state depends on besides the bars: the anchor, the model version and its universe."""
        return (utc(acct.anchor), acct.model_name, acct.model_version, tuple(policy.spec.symbols))

    def _build_market(self, acct: _Acct, policy: TradingPolicy, i: int, cols: list[int], shared: BarRows
                      ) -> LiveMarket:
        """The market state of ``acct`` at bar ``i``, computed over its window (from its anchor) on the columns
        ``cols`` of the policy's symbols, sharing the bar rows ``shared`` of its key."""
        start = int(self.timestamps.searchsorted(utc(acct.anchor)))
        stamps = self.timestamps[start:i + 1]
        bars = self.bars  # the policy's symbols only: its features (cross-sectional ranks) are over its universe
        window = bars[(bars["timestamp"] >= stamps[0]) & (bars["timestamp"] <= stamps[-1])
                      & bars["symbol"].isin(policy.spec.symbols)]
        return LiveMarket(policy, window, stamps, {c: v[start:i + 1][:, cols] for c, v in self._prices.items()},
                          self._count[start:i + 1][:, cols] > 0, shared)

_A, _E, _D, _P, _F, _O, _V = cast(tuple[sa.Table, ...], (
    Account.__table__, Equity.__table__, Decision.__table__, Position.__table__, Fill.__table__, Order.__table__,
    Event.__table__))
_LAST_BAR = sa.select(sa.func.max(_E.c.bar)).where(_E.c.account == _A.c.name).scalar_subquery()
_READ_ACCOUNT = sa.select(_A, _LAST_BAR.label("last_bar")).where(_A.c.name == sa.bindparam("name"))
_HAS_ACCOUNT = sa.select(_A.c.name).where(_A.c.name == sa.bindparam("name"))
_DONE = sa.select(_E.c.bar).where(_E.c.account == sa.bindparam("account"), _E.c.bar == sa.bindparam("bar"))
_EQUITY, _FILLS, _ORDERS = sa.insert(_E), sa.insert(_F), sa.insert(_O)
_DECISION, _EVENTS, _POSITION_NEW = sa.insert(_D), sa.insert(_V), sa.insert(_P)
_POSITION_SET = sa.update(_P).where(_P.c.account == sa.bindparam("a"), _P.c.symbol == sa.bindparam("s")) \
    .values(qty=sa.bindparam("q"))
_ACCOUNT_SET = sa.update(_A).where(_A.c.name == sa.bindparam("account"))


@dataclass
class _Acct:
    """An account's row (and the bar of its last equity row), read at the start of every step."""

    name: str
    initial_cash: float
    model_name: str
    model_version: int
    symbols: list[str]
    anchor: pd.Timestamp
    first_bar: pd.Timestamp
    halted: bool
    pending_version: int | None
    last_bar: pd.Timestamp | None


@dataclass(frozen=True)
class KeptDecision:
    """A recorded decision as the next step needs it: its id, bar, target (N + 1), guard, risk state, OOD score."""

    id: int
    bar: pd.Timestamp
    target: list[float]
    guard: str | None
    risk_state: dict[str, Any]
    ood_score: float | None


@dataclass
class _Kept:
    """An account's book after its last equity row, as the store holds it (kept between steps by the trader)."""

    last_bar: pd.Timestamp | None
    cash: float
    equity: float | None                # of the last equity row (None: no bar processed yet)
    gross: float
    positions: dict[str, float]         # the position rows
    at_last: KeptDecision | None        # the decision at ``last_bar`` (None: none there, e.g. halted)
    latest: KeptDecision | None         # the newest decision
    peak: float


@dataclass(frozen=True)
class AccountBook:
    """An account's book after its last processed bar and its newest decision (``Trader.book``)."""

    account: str
    model_name: str
    model_version: int
    halted: bool
    symbols: list[str]
    last_bar: pd.Timestamp | None
    cash: float
    equity: float
    peak: float
    gross_exposure: float
    decision: KeptDecision | None


def _read_account(conn: sa.Connection, name: str) -> _Acct:
    row = conn.execute(_READ_ACCOUNT, {"name": name}).first()
    if row is None:
        known = ", ".join(conn.execute(sa.select(_A.c.name)).scalars()) or "none"
        raise KeyError(f"no paper account {name!r} (accounts: {known}); open one with `tradepipe trade open {name}`")
    return _Acct(row.name, float(row.initial_cash), row.model_name, int(row.model_version),
                 [str(s) for s in row.symbols], utc(row.anchor), utc(row.first_bar), bool(row.halted),
                 row.pending_version, utc(row.last_bar) if row.last_bar is not None else None)


def _decision(row: Any) -> KeptDecision | None:
    if row is None:
        return None
    return KeptDecision(int(row.id), utc(row.bar), list(row.target), row.guard, dict(row.risk_state), row.ood_score)


def _load_book(conn: sa.Connection, acct: _Acct) -> _Kept:
    """The book of ``acct`` from the store: its last equity row, positions, decisions and peak equity."""
    positions = {str(r.symbol): float(r.qty) for r in conn.execute(sa.select(_P.c.symbol, _P.c.qty)
                                                                   .where(_P.c.account == acct.name))}
    latest = _decision(conn.execute(sa.select(_D).where(_D.c.account == acct.name).order_by(_D.c.bar.desc())
                                    .limit(1)).first())
    if acct.last_bar is None:
        return _Kept(None, acct.initial_cash, None, 0.0, positions, None, latest, acct.initial_cash)
    last = conn.execute(sa.select(_E.c.cash, _E.c.equity, _E.c.gross_exposure)
                        .where(_E.c.account == acct.name, _E.c.bar == acct.last_bar.to_pydatetime())).one()
    peak = conn.execute(sa.select(sa.func.max(_E.c.equity)).where(_E.c.account == acct.name)).scalar()
    at_last = latest if latest is not None and latest.bar == acct.last_bar else None
    return _Kept(acct.last_bar, float(last.cash), float(last.equity), float(last.gross_exposure), positions, at_last,
                 latest, max(acct.initial_cash, float(peak or 0.0)))


class _Writes:
    """A step's store writes after its broker calls, run together before its decision's row (``run``): SQLite holds
    its write lock from a transaction's first write to its commit, so deciding in between would make the steps of
    other accounts (another process) wait for the policy."""

    def __init__(self) -> None:
        self._statements: list[tuple[sa.Executable, Any]] = []

    def execute(self, statement: sa.Executable, parameters: Any) -> None:
        self._statements.append((statement, parameters))

    def run(self, conn: sa.Connection) -> None:
        for statement, parameters in self._statements:
            conn.execute(statement, parameters)


def _insert_events(conn: sa.Connection | _Writes, events: list[dict[str, object]]) -> None:
    if events:
        conn.execute(_EVENTS, events)


def _halt(conn: sa.Connection | _Writes, acct: _Acct, bar: pd.Timestamp | None, why: Refusal) -> dict[str, object]:
    """Engage the kill switch of ``acct``; the halt event's row to insert."""
    acct.halted = True
    conn.execute(_ACCOUNT_SET, {"account": acct.name, "halted": True})
    return _event(acct.name, bar, "halt", why)


def _event(account: str, bar: pd.Timestamp | None, kind: str, why: Refusal) -> dict[str, object]:
    return {"account": account, "bar": bar.to_pydatetime() if bar is not None else None, "kind": kind,
            "rule": why.rule, "symbol": why.symbol, "message": why.message, "created_at": now_utc()}
