"""Paper trading for real: the trade store on SQLite and on a real PostgreSQL, the simulated broker's own ledger,
the tiny trained policy deciding bar by bar. Paper equals the backtest engine; bad bars, fail-safes, the kill
switch, reconciliation and killed steps behave as the README says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa

from tests import ROOT
from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import Params
from tradepipe.core.scaler import Scaler
from tradepipe.features import build_features, feature_columns
from tradepipe.models.cnn_lstm import CNNLSTM
from tradepipe.models.predictor import Predictor
from tradepipe.risk.manager import RiskState
from tradepipe.trading import accounts
from tradepipe.trading.broker import SimulatedBroker
from tradepipe.trading.decision import BarRows, LiveMarket, Rows, decide, market_until
from tradepipe.trading.posted import PostedBars
from tradepipe.trading.replay import replay
from tradepipe.trading.step import Trader
from tradepipe.trading.store import TradeStore
from tradepipe.trading.tables import Decision, Equity, Event, Fill, Order, Position

START = pd.Timestamp("2012-06-01", tz="UTC")
WARMUP = 300


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty trade store: a SQLite file, or a new database on the real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trades.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    name = f"trades_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(base)
    conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
    conn.cursor().execute(f"CREATE DATABASE {name}")
    conn.close()
    yield base.replace("postgresql://", "postgresql+psycopg2://").rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def policy(tiny_policy: Path) -> TradingPolicy:
    return TradingPolicy.load(tiny_policy)


def _params(params: Params, **trading: object) -> Params:
    return params.model_copy(update={"trading": params.trading.model_copy(update={"warmup_bars": WARMUP, **trading})})


def make_trader(store_url: str, broker_url: str, bars: pd.DataFrame, params: Params, policy: TradingPolicy,
                cash: float = 1e6) -> Trader:
    closes = bars.set_index(["symbol", "timestamp"])["close"]
    broker = SimulatedBroker(broker_url, params.costs.rate, lambda s, t: float(closes.get((s, t), np.nan)))
    trader = Trader(TradeStore(store_url), broker, bars, params, lambda _n, _v: policy)
    accounts.open_account(trader.store, "acct", cash, "tradepipe-agent", 1, policy.spec.symbols, trader.timestamps,
                          START, params.trading.warmup_bars, "simulated")
    broker.open_account("acct", cash)
    return trader


def alone_decisions(bars: pd.DataFrame, params: Params, policy: TradingPolicy, tmp_path: Path,
                    todo: list[pd.Timestamp]) -> pd.DataFrame:
    """The decisions of an account stepping ``todo`` alone, in a trader of its own (by bar)."""
    alone = make_trader(f"sqlite:///{tmp_path / 'alone.db'}", f"sqlite:///{tmp_path / 'alone-broker.db'}", bars,
                        params, policy)
    for bar in todo:
        alone.step("acct", bar)
    return table(alone, Decision).sort_values("bar")


def run_bars(trader: Trader, n: int) -> list[str]:
    return [trader.step("acct", bar).status for bar in trader.pending_bars("acct")[:n]]


def table(trader: Trader, model: type) -> pd.DataFrame:
    with trader.store.transaction() as session:
        return pd.read_sql(sa.select(model.__table__), session.connection())


def test_paper_trading_reproduces_the_backtest_engine(bars: pd.DataFrame, params: Params,
                                                      policy: TradingPolicy, tmp_path: Path) -> None:
    comparison = replay(tmp_path, _params(params), policy, 1, START, pd.Timestamp("2012-08-31", tz="UTC"),
                        bars=bars)
    summary = comparison.summary()
    assert summary["bars"] == 65 and summary["paper_total_turnover"] > 0.5   # it traded
    assert summary["max_abs_equity_diff"] <= 1e-9
    assert summary["max_abs_turnover_diff"] <= 1e-9 and summary["max_abs_cost_diff"] <= 1e-12
    assert summary["paper_final_equity"] != 1.0


def test_steps_record_books_that_add_up_and_are_safe_to_retry(store_url: str, bars: pd.DataFrame, params: Params,
                                                               policy: TradingPolicy, tmp_path: Path) -> None:
    trader = make_trader(store_url, f"sqlite:///{tmp_path / 'broker.db'}", bars, _params(params), policy)
    assert run_bars(trader, 8) == ["traded"] * 8
    bar = trader.pending_bars("acct")[0]
    again = trader.step("acct", trader.timestamps[trader.timestamps < bar][-1])
    assert again.status == "already_done"
    equity, fills, positions = table(trader, Equity), table(trader, Fill), table(trader, Position)
    assert len(equity) == 8 and fills["broker_fill_id"].is_unique and len(fills) > 0
    closes = bars.pivot(index="timestamp", columns="symbol", values="close")
    last = equity.iloc[-1]
    held = positions.set_index("symbol")["qty"]
    value = float((held * closes.loc[pd.Timestamp(last["bar"]).tz_localize("UTC") if pd.Timestamp(last["bar"]).tzinfo
                                     is None else pd.Timestamp(last["bar"])][held.index]).sum())
    assert last["cash"] + value == pytest.approx(last["equity"], rel=1e-12)
    # the broker's independent ledger agrees with the store
    assert trader.broker.positions("acct") == pytest.approx(held[held != 0].to_dict(), abs=1e-9)
    assert trader.broker.cash("acct") == pytest.approx(last["cash"], rel=1e-12)
    assert trader.store.engine.dialect.name == store_url.split(":")[0].split("+")[0]


@pytest.mark.parametrize(("damage", "rule"), [
    ("drop", "symbol_missing"), ("nan", "price_invalid"), ("zero", "price_invalid"),
    ("duplicate", "duplicate_bar"), ("spike", "price_band")])
def test_a_bad_bar_is_refused_with_an_event_and_changes_nothing(
        store_url: str, bars: pd.DataFrame, params: Params, policy: TradingPolicy, tmp_path: Path,
        damage: str, rule: str) -> None:
    trader = make_trader(store_url, f"sqlite:///{tmp_path / 'broker.db'}", bars, _params(params), policy)
    run_bars(trader, 3)
    bad = trader.pending_bars("acct")[0]
    before = table(trader, Position), table(trader, Equity), trader.broker.cash("acct")
    at = (trader.bars["timestamp"] == bad) & (trader.bars["symbol"] == "KO")
    if damage == "drop":
        trader.bars = trader.bars[~at]
    elif damage == "duplicate":
        trader.bars = pd.concat([trader.bars, trader.bars[at]])
    else:
        damaged = trader.bars.copy()
        damaged.loc[at, "close"] = {"nan": np.nan, "zero": 0.0, "spike": 1e4}[damage]
        trader.bars = damaged                                # the trader indexes the bars it is given
    result = trader.step("acct", bad)
    assert result.status == "refused"
    events = table(trader, Event)
    refused = events[events["kind"] == "refused_bar"]
    assert list(refused["rule"]) == [rule] and list(refused["symbol"]) == ["KO"]
    assert "KO" in refused["message"].iloc[0]
    pd.testing.assert_frame_equal(table(trader, Position), before[0])
    pd.testing.assert_frame_equal(table(trader, Equity), before[1])
    assert trader.broker.cash("acct") == before[2]
    assert trader.step("acct", trader.timestamps[trader.timestamps < bad][-2]).status == "already_done"


def test_an_older_bar_than_the_last_processed_is_refused(store_url: str, bars: pd.DataFrame, params: Params,
                                                        policy: TradingPolicy, tmp_path: Path) -> None:
    trader = make_trader(store_url, f"sqlite:///{tmp_path / 'broker.db'}", bars, _params(params), policy)
    run_bars(trader, 3)
    skipped = trader.pending_bars("acct")[0]
    trader.step("acct", trader.pending_bars("acct")[1])     # a later bar first
    result = trader.step("acct", skipped)
    assert result.status == "refused" and "not after the last processed bar" in result.message


def test_fail_safes_reject_orders_and_the_kill_switch_stops_them(store_url: str, bars: pd.DataFrame,
                                                                 params: Params, policy: TradingPolicy,
                                                                 tmp_path: Path) -> None:
    trader = make_trader(store_url, f"sqlite:///{tmp_path / 'broker.db'}", bars,
                         _params(params, max_order_notional=1000.0), policy)
    run_bars(trader, 3)
    orders, events = table(trader, Order), table(trader, Event)
    assert (orders["status"] == "rejected").all() and len(orders) > 0
    assert set(events.loc[events["kind"] == "rejection", "rule"]) == {"max_order_notional"}
    assert table(trader, Fill).empty and trader.broker.positions("acct") == {}
    accounts.halt(trader.store, "acct", "operator says stop")
    trader.params = _params(params)                          # no order limit any more, but halted
    assert run_bars(trader, 2) == ["halted", "halted"]
    assert len(table(trader, Order)) == len(orders)          # nothing new left
    accounts.resume(trader.store, "acct", "checked")
    assert run_bars(trader, 2) == ["traded", "traded"]       # decides again, then trades
    assert not table(trader, Fill).empty
    kinds = list(table(trader, Event)["kind"])
    assert kinds.index("halt") < kinds.index("resume")


def test_the_daily_loss_limit_engages_the_kill_switch(store_url: str, bars: pd.DataFrame, params: Params,
                                                      policy: TradingPolicy, tmp_path: Path) -> None:
    trader = make_trader(store_url, f"sqlite:///{tmp_path / 'broker.db'}", bars, _params(params, daily_loss_limit=1e-4),
                         policy)
    statuses = run_bars(trader, 20)
    first = statuses.index("halted")
    assert set(statuses[first:]) == {"halted"}                 # it stays halted until resumed
    events = table(trader, Event)
    assert list(events.loc[events["kind"] == "halt", "rule"]) == ["daily_loss_limit"]
    equity = table(trader, Equity)["equity"].to_numpy()
    assert equity[first] < equity[first - 1] * (1 - 1e-4)


def test_a_reconciliation_mismatch_halts_the_account(store_url: str, bars: pd.DataFrame, params: Params,
                                                     policy: TradingPolicy, tmp_path: Path) -> None:
    broker_url = f"sqlite:///{tmp_path / 'broker.db'}"
    trader = make_trader(store_url, broker_url, bars, _params(params), policy)
    run_bars(trader, 3)
    with sa.create_engine(broker_url).begin() as conn:        # the broker's books change behind the store's back
        conn.execute(sa.text("UPDATE broker_positions SET qty = qty + 1 WHERE symbol = 'KO'"))
    assert run_bars(trader, 2) == ["halted", "halted"]
    events = table(trader, Event)
    halt = events[events["kind"] == "halt"]
    assert list(halt["rule"]) == ["reconciliation"] and "KO" in halt["message"].iloc[0]
    assert (events["kind"] == "reconciliation_mismatch").sum() == 2   # seen at both bars, halted once
    assert len(table(trader, Equity)) == 3                             # and neither bar was processed


KILL = textwrap.dedent("""
    import os, signal, sys
    import pandas as pd
    from tradepipe.trading import broker as broker_module, step as step_module
    point = sys.argv[1]
    if point == "after_submission":
        real = broker_module.SimulatedBroker.submit_many   # a step's orders go to the broker in one call
        def submit_many(self, account, orders):
            answer = real(self, account, orders)
            os.kill(os.getpid(), signal.SIGKILL)
        broker_module.SimulatedBroker.submit_many = submit_many
    elif point == "after_fills":
        real_fill = step_module.Trader._fill               # the broker's fills applied to the book, not committed
        def fill(self, *args):
            done = real_fill(self, *args)
            if done[2]:
                os.kill(os.getpid(), signal.SIGKILL)
            return done
        step_module.Trader._fill = fill
    elif point == "after_decision":
        real_decide = step_module.Trader._decide
        def decide(self, *args):
            real_decide(self, *args)
            os.kill(os.getpid(), signal.SIGKILL)
        step_module.Trader._decide = decide
""")


@pytest.mark.parametrize("point", ["after_submission", "after_fills", "after_decision"])
def test_a_step_killed_at_any_point_reruns_without_double_orders_or_lost_fills(
        point: str, bars: pd.DataFrame, params: Params, policy: TradingPolicy, tiny_policy: Path,
        tmp_path: Path) -> None:
    store_url, broker_url = f"sqlite:///{tmp_path / 'trades.db'}", f"sqlite:///{tmp_path / 'broker.db'}"
    trader = make_trader(store_url, broker_url, bars, _params(params), policy)
    run_bars(trader, 2)                                       # a decision is pending: the next bar trades
    bars_file = tmp_path / "bars.parquet"
    bars.to_parquet(bars_file)
    script = tmp_path / "kill.py"
    script.write_text(KILL + textwrap.dedent(f"""
        import numpy as np
        from tradepipe.agents.policy import TradingPolicy
        from tradepipe.config import load_params
        from tradepipe.trading.broker import SimulatedBroker
        from tradepipe.trading.step import Trader
        from tradepipe.trading.store import TradeStore
        bars = pd.read_parquet({str(bars_file)!r})
        params = load_params({str(ROOT / 'params.yaml')!r})
        params = params.model_copy(update={{"trading": params.trading.model_copy(update={{"warmup_bars": {WARMUP}}})}})
        policy = TradingPolicy.load(__import__("pathlib").Path({str(tiny_policy)!r}))
        closes = bars.set_index(["symbol", "timestamp"])["close"]
        broker = SimulatedBroker({broker_url!r}, params.costs.rate, lambda s, t: float(closes.get((s, t), np.nan)))
        trader = Trader(TradeStore({store_url!r}), broker, bars, params, lambda n, v: policy)
        trader.step("acct", trader.pending_bars("acct")[0])
    """))
    done = subprocess.run([sys.executable, str(script), point], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    closes = bars.set_index(["symbol", "timestamp"])["close"]
    broker = SimulatedBroker(broker_url, params.costs.rate, lambda s, t: float(closes.get((s, t), np.nan)))
    rerun = Trader(TradeStore(store_url), broker, bars, _params(params), lambda _n, _v: policy)
    statuses = [rerun.step("acct", bar).status for bar in rerun.pending_bars("acct")[:2]]
    assert statuses == ["traded", "traded"]
    fills = table(rerun, Fill)
    assert fills["client_order_id"].is_unique                 # no order sent twice, none filled twice
    with sa.create_engine(broker_url).connect() as conn:
        broker_fills = conn.execute(sa.text("SELECT COUNT(*) FROM broker_fills")).scalar()
    assert broker_fills == len(fills)                          # no fill lost
    held = table(rerun, Position).set_index("symbol")["qty"]
    assert broker.positions("acct") == pytest.approx(held[held != 0].to_dict(), abs=1e-9)
    assert broker.cash("acct") == pytest.approx(table(rerun, Equity)["cash"].iloc[-1], rel=1e-12)


def test_the_monitor_reads_the_realized_equity_of_the_account_trading_the_champion(
        bars: pd.DataFrame, params: Params, policy: TradingPolicy, tmp_path: Path) -> None:
    from tradepipe.trading.summary import account_rows, realized_returns

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    assert realized_returns(tmp_path, params.trading, "tradepipe-agent", 1, 5) is None and account_rows(tmp_path) == []
    trader = make_trader(f"sqlite:///{tmp_path / 'trades.db'}", f"sqlite:///{tmp_path / 'b.db'}", bars,
                         _params(params), policy)
    run_bars(trader, 8)
    account, returns = realized_returns(tmp_path, params.trading, "tradepipe-agent", 1, 5)
    equity = table(trader, Equity)["equity"]
    np.testing.assert_allclose(returns.to_numpy(), equity.pct_change().dropna().tail(5).to_numpy(), rtol=1e-12)
    assert account == "acct" and realized_returns(tmp_path, params.trading, "tradepipe-agent", 2, 5) is None
    (row,) = account_rows(tmp_path)
    assert row["equity"] == pytest.approx(equity.iloc[-1]) and row["halted"] is False


def _reference_policy(policy: TradingPolicy, params: Params) -> TradingPolicy:
    """The tiny policy's agent with the default run's whole feature recipe (every close-only indicator, ranks)."""
    recipe = params.features.model_copy(update={"ohlcv": False})
    n = len(feature_columns(recipe))
    predictor = Predictor(CNNLSTM(n, 4, 3, 4).eval(), {"seq_len": 20, "conv_filters": 4, "lstm_hidden": 4}, recipe,
                          Scaler(np.zeros(n, np.float32), np.full(n, 0.1, np.float32)), 0.02)
    return TradingPolicy(policy.agents, policy.blend, policy.spec, predictor)


@pytest.mark.parametrize("recipe", ["tiny", "default"])
def test_the_live_market_equals_the_full_recomputation_at_every_bar(bars: pd.DataFrame, params: Params,
                                                                   policy: TradingPolicy, recipe: str) -> None:
    """Advanced bar by bar, the kept state gives the Market rows, features, forecasts, risk series and targets that
    recomputing everything from the anchor gives, at every bar (features to 1e-12, the rest bit for bit)."""
    policy = policy if recipe == "tiny" else _reference_policy(policy, params)
    stamps = pd.DatetimeIndex(sorted(bars["timestamp"].unique()))
    symbols = policy.spec.symbols
    wide = {c: bars.pivot(index="timestamp", columns="symbol", values=c)[symbols].to_numpy() for c in ["close"]}
    present = np.ones((len(stamps), len(symbols)), dtype=bool)
    anchor, first, last = 40, 340, 380   # warm-up from bar 40; risk windows (252 bars) filled before the first
    live = LiveMarket(policy, bars[bars["timestamp"].between(stamps[anchor], stamps[first])],
                      stamps[anchor:first + 1], {c: v[anchor:first + 1] for c, v in wide.items()},
                      present[anchor:first + 1])
    live_state, full_state = RiskState.start(1, len(symbols)), RiskState.start(1, len(symbols))
    equity, turbulent = 1.0, 0
    for t in range(first, last):
        if t > first:
            live.advance(stamps[t], {c: v[t] for c, v in wide.items()}, present[t])
        window = bars[bars["timestamp"].between(stamps[anchor], stamps[t])]
        full = market_until(policy, window)
        rows = len(live.market.timestamps)
        tail = full.take(slice(-rows, None))
        assert list(live.market.timestamps) == list(tail.timestamps)
        np.testing.assert_array_equal(live.market.returns, tail.returns)
        np.testing.assert_allclose(live.market.features, tail.features, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(live.market.predictions, tail.predictions, rtol=1e-12, atol=1e-12)
        newest = build_features(window, policy.predictor.features).tail(len(symbols))
        np.testing.assert_allclose(live.raw[-1], newest.iloc[:, 2:].to_numpy(dtype=np.float64), rtol=1e-12,
                                   atol=1e-15)
        reference = policy.spec.risk_manager(full, since=len(full.timestamps) - 1)
        risk = live.risk
        np.testing.assert_array_equal(risk.prices[-1], reference.prices[-1])
        np.testing.assert_array_equal(risk.annual_cov[-1], reference.annual_cov[-1])
        assert risk.turbulent[-1] == reference.turbulent[-1]
        turbulent += int(reference.turbulent[-1])
        book = np.append(np.full(len(symbols), 0.1), 1.0 - 0.1 * len(symbols))
        if recipe == "tiny":
            a = decide(policy, live.market, book, equity, live_state, risk)
            b = decide(policy, full, book, equity, full_state)
            np.testing.assert_array_equal(a.target, b.target)
            np.testing.assert_array_equal(a.proposed, b.proposed)
            equity *= 1.0 + float(a.target[:-1] @ full.returns[-1])
    assert turbulent >= 0


def test_accounts_on_one_anchor_share_the_market_and_decide_as_alone(bars: pd.DataFrame, params: Params,
                                                                     policy: TradingPolicy, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two accounts of one anchor and model share one kept market state: in lockstep it is built once and advanced
    once a bar; when one runs ahead it advances a copy, so the other catches up on the state at its own bar, never
    rebuilt, and on the bar rows the first computed (no feature row or forecast twice); every decision equals the one
    a lone account (its own trader) records."""
    import tradepipe.trading.step as step_module
    built: list[object] = []
    forecasts: list[pd.Timestamp] = []

    class Counted(LiveMarket):
        def __init__(self, *args: object) -> None:
            built.append(self)
            super().__init__(*args)  # type: ignore[arg-type]

        def _forecast(self) -> np.ndarray:
            forecasts.append(self.last)
            return super()._forecast()

    monkeypatch.setattr(step_module, "LiveMarket", Counted)
    p = _params(params)
    shared = make_trader(f"sqlite:///{tmp_path / 'shared.db'}", f"sqlite:///{tmp_path / 'shared-broker.db'}", bars,
                         p, policy)
    accounts.open_account(shared.store, "twin", 1e6, "tradepipe-agent", 1, policy.spec.symbols, shared.timestamps,
                          START, p.trading.warmup_bars, "simulated")
    shared.broker.open_account("twin", 1e6)  # type: ignore[attr-defined]
    todo = shared.pending_bars("acct")[:9]
    for bar in todo[:5]:                       # lockstep: the second account reuses the first one's state
        assert shared.step("acct", bar).status == shared.step("twin", bar).status == "traded"
        assert shared._live["acct"][1] is shared._live["twin"][1]
    assert len(built) == 1
    for bar in todo[5:]:                       # "acct" runs ahead on a copy; "twin" is left at its bar
        shared.step("acct", bar)
        assert shared._live["twin"][1].last == todo[4]
    for bar in todo[5:]:
        shared.step("twin", bar)
    assert len(built) == 1                     # copied, never rebuilt
    assert forecasts == todo[1:]               # each bar's rows computed once, by the first account to reach it
    reference, decisions = alone_decisions(bars, p, policy, tmp_path, todo), table(shared, Decision)
    for account in ("acct", "twin"):
        mine = decisions[decisions["account"] == account].sort_values("bar")
        assert len(mine) == len(todo)
        for column in ("target", "proposed", "risk_state"):
            assert list(mine[column]) == list(reference[column]), (account, column)


def test_market_rows_computed_ahead_by_another_trader_are_the_rows_the_step_computes(
        bars: pd.DataFrame, params: Params, policy: TradingPolicy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the serving front does for a step worker: a second trader over the same store computes the account's
    next market rows ahead of its step (``market_ahead``, ``market_rows``). Given them (put, or promised and then
    received), the stepping trader computes no forecast; promised rows that do not come leave it to compute them;
    every decision equals a lone account's, bit for bit."""
    forecasts: list[pd.Timestamp] = []
    compute = LiveMarket._forecast

    def counted(self: LiveMarket) -> np.ndarray:
        forecasts.append(self.last)
        return compute(self)

    monkeypatch.setattr(LiveMarket, "_forecast", counted)
    p = _params(params)
    store, broker = f"sqlite:///{tmp_path / 'trades.db'}", f"sqlite:///{tmp_path / 'broker.db'}"
    worker = make_trader(store, broker, bars, p, policy)
    front = Trader(TradeStore(store), worker.broker, bars, p, lambda _n, _v: policy)
    todo = worker.pending_bars("acct")[:7]
    assert worker.step("acct", todo[0]).status == "traded"
    assert front.market_ahead("acct", todo[0]) is None                         # nothing pending
    assert front.market_ahead("acct", todo[2]) is None                         # two bars pending: not ahead
    ahead = front.market_ahead("acct", todo[1])
    assert ahead is not None and (ahead.bar, ahead.key, ahead.ready) == (todo[1], None, False)  # no policy yet
    assert front.market_rows(ahead) is None                                    # built at the bar: no rows kept
    assert worker.step("acct", todo[1]).status == "traded"

    def ahead_of(bar: pd.Timestamp) -> tuple[tuple[object, ...], Rows]:
        ahead = front.market_ahead("acct", bar)
        assert ahead is not None and ahead.ready and ahead.key is not None
        rows = front.market_rows(ahead)
        assert rows is not None
        return ahead.key, rows

    def stepped(bar: pd.Timestamp) -> list[pd.Timestamp]:
        before = len(forecasts)
        assert worker.step("acct", bar).status == "traded"
        return forecasts[before:]

    for bar in todo[2:4]:                                                      # put before the step
        key, rows = ahead_of(bar)
        worker.bar_rows(key).put(bar, rows)
        assert stepped(bar) == []
    received: list[pd.Timestamp] = []

    def receiver(shared: BarRows, bar: pd.Timestamp, rows: Rows | None) -> Callable[[], None]:
        def receive() -> None:  # as the worker's receives them from the front's pipe
            received.append(bar)
            shared.put(bar, rows)
        return receive

    for bar, comes in ((todo[4], True), (todo[5], False), (todo[6], True)):  # promised, received when first needed
        key, rows = ahead_of(bar)
        shared = worker.bar_rows(key)
        shared.promise(bar, receiver(shared, bar, rows if comes else None))
        assert stepped(bar) == ([] if comes else [bar])
    assert received == todo[4:7]
    reference, decisions = alone_decisions(bars, p, policy, tmp_path, todo), table(worker, Decision)
    for column in ("target", "proposed", "risk_state"):
        assert list(decisions.sort_values("bar")[column]) == list(reference[column]), column


def test_data_holding_more_symbols_than_the_policy_trades_gives_the_same_decisions(
        bars: pd.DataFrame, params: Params, policy: TradingPolicy, tmp_path: Path) -> None:
    """The bars of symbols the policy does not trade are no part of its market (its features rank its universe)."""
    extra = bars[bars["symbol"] == "KO"].assign(symbol="ZZZ", close=lambda f: f["close"] * 3.0)
    wider = pd.concat([bars, extra]).sort_values(["timestamp", "symbol"], kind="stable", ignore_index=True)
    p = _params(params)
    trader = make_trader(f"sqlite:///{tmp_path / 'wide.db'}", f"sqlite:///{tmp_path / 'wide-broker.db'}", wider, p,
                         policy)
    todo = trader.pending_bars("acct")[:4]
    assert [trader.step("acct", bar).status for bar in todo] == ["traded"] * 4
    reference, decisions = alone_decisions(bars, p, policy, tmp_path, todo), table(trader, Decision)
    for column in ("target", "proposed", "risk_state"):
        assert list(decisions.sort_values("bar")[column]) == list(reference[column]), column


def test_a_market_state_that_failed_to_advance_is_never_found_again(bars: pd.DataFrame, params: Params,
                                                                    policy: TradingPolicy, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A state whose advance raised already says it is at the new bar: the retry rebuilds instead of using it."""
    trader = make_trader(f"sqlite:///{tmp_path / 'trades.db'}", f"sqlite:///{tmp_path / 'broker.db'}", bars,
                         _params(params), policy)
    first, bar = trader.pending_bars("acct")[:2]
    assert trader.step("acct", first).status == "traded"

    def broken(self: LiveMarket) -> np.ndarray:
        raise RuntimeError("forecast failed")

    monkeypatch.setattr(LiveMarket, "_forecast", broken)
    with pytest.raises(RuntimeError, match="forecast failed"):
        trader.step("acct", bar)
    monkeypatch.undo()
    assert trader.step("acct", bar).status == "traded"
    reference = alone_decisions(bars, _params(params), policy, tmp_path, [first, bar])
    assert list(table(trader, Decision).sort_values("bar")["target"]) == list(reference["target"])


def test_bars_added_one_timestamp_at_a_time_are_the_bars_given_at_once(bars: pd.DataFrame, params: Params,
                                                                     policy: TradingPolicy, tmp_path: Path) -> None:
    """Posted bars fill the spare rows of the trader's arrays (which double several times here): every close, count
    and table then equals a trader's given all the bars at the start; rows past the last bar hold nothing."""
    stamps = sorted(bars["timestamp"].unique())
    cut = stamps[-150]
    grown = make_trader(f"sqlite:///{tmp_path / 'grown.db'}", f"sqlite:///{tmp_path / 'grown-broker.db'}",
                        bars[bars["timestamp"] < cut], _params(params), policy)
    whole = make_trader(f"sqlite:///{tmp_path / 'whole.db'}", f"sqlite:///{tmp_path / 'whole-broker.db'}", bars,
                        _params(params), policy)
    after = bars[bars["timestamp"] >= cut]
    for _, rows in after.groupby("timestamp", sort=True):
        posted = PostedBars(list(rows["timestamp"]), list(rows["symbol"]), {"close": rows["close"].to_numpy()})
        assert np.isnan(grown.known_closes(posted)).all()
        grown.add_bars(posted)
        np.testing.assert_array_equal(grown.known_closes(posted), rows["close"].to_numpy())
    assert grown.timestamps.equals(whole.timestamps)
    n = len(whole.timestamps)
    for column, wide in whole._prices.items():
        np.testing.assert_array_equal(grown._prices[column][:n], wide, err_msg=column)
        assert np.isnan(grown._prices[column][n:]).all()
    np.testing.assert_array_equal(grown._count[:n], whole._count)
    assert not grown._count[n:].any()
    pd.testing.assert_frame_equal(grown.bars.reset_index(drop=True), whole.bars.reset_index(drop=True))
    for ts in stamps[-150::37]:
        pd.testing.assert_frame_equal(grown.bars_at(ts), whole.bars_at(ts))
        assert grown.close("KO", ts) == whole.close("KO", ts)
    steps = grown.pending_bars("acct")[:3]
    assert [grown.step("acct", bar).status for bar in steps] == ["traded"] * 3
