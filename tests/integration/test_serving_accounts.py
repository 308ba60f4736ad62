"""The stateful account endpoints of the real serving app: new bars in, the account's decision out, recorded in
the trade store by the same step as `tradepipe trade step` (a second desk stepping the same bars agrees)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from tests import ROOT
from tests.fixtures.sqlite_files import rows_in_the_file
from tradepipe.config import load_params
from tradepipe.paths import BARS
from tradepipe.serving import create_app
from tradepipe.serving.workers import RowsAhead, StepWorkers
from tradepipe.trading.accounts import open_account
from tradepipe.trading.decision import Rows
from tradepipe.trading.desk import LIVE_BARS_LOG, open_desk, read_live_log
from tradepipe.trading.step import Trader

TOKEN = "accounts-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _project(root: Path, bars: pd.DataFrame) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["trading"].update(warmup_bars=300, max_stale_sessions=100_000)
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / BARS).parent.mkdir(parents=True)
    bars.to_parquet(root / BARS)
    return root


def _desk(root: Path, start: pd.Timestamp, accounts: tuple[str, ...] = ("acct",)) -> Trader:
    trader = open_desk(root, load_params(root / "params.yaml"), tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    policy = trader.policy("tradepipe-agent", 1)
    for account in accounts:
        open_account(trader.store, account, 1e6, "tradepipe-agent", 1, policy.spec.symbols, trader.timestamps,
                     start, 300, "simulated")
        trader.broker.open_account(account, 1e6)  # type: ignore[attr-defined]
    return trader


def _payload(bars: pd.DataFrame) -> dict[str, list[dict[str, object]]]:
    rows = bars.assign(timestamp=bars["timestamp"].map(pd.Timestamp.isoformat))
    return {"bars": rows[["timestamp", "symbol", "close"]].to_dict(orient="records")}


def _targets(root: Path, account: str = "acct") -> pd.DataFrame:
    with sa.create_engine(f"sqlite:///{root / 'trades.db'}").connect() as conn:
        return pd.read_sql(sa.text("SELECT bar, target FROM decisions WHERE account = :a ORDER BY bar"), conn,
                           params={"a": account})


@pytest.fixture
def stamps(bars: pd.DataFrame) -> list[pd.Timestamp]:
    return sorted(bars["timestamp"].unique())


def test_new_bars_step_the_account_like_trade_step(tmp_path: Path, bars: pd.DataFrame, stamps: list[pd.Timestamp],
                                                   tiny_policy: Path,
                                                   publish_champion: Callable[[str, Path], str]) -> None:
    served, offline = _project(tmp_path / "served", bars[bars["timestamp"] <= stamps[-4]]), \
        _project(tmp_path / "offline", bars)
    for root in (served, offline):
        publish_champion(f"sqlite:///{root / 'mlflow.db'}", tiny_policy)
    trader = _desk(served, stamps[-6])
    app = create_app(tracking_uri=f"sqlite:///{served / 'mlflow.db'}", token=TOKEN, poll_seconds=0,
                     paper=(served, trader))
    with TestClient(app) as client:
        assert client.post("/v1/accounts/acct/bars", json=_payload(bars[bars["timestamp"] == stamps[-3]])
                           ).status_code == 401                                   # the token first
        answer = client.post("/v1/accounts/acct/bars", headers=AUTH,
                             json=_payload(bars[bars["timestamp"] == stamps[-3]]))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [s["status"] for s in body["steps"]] == ["traded"] * 4             # catches up, then the new bar
        assert pd.Timestamp(body["as_of"]) == stamps[-3]
        weights = {w["symbol"]: w["weight"] for w in body["weights"]}
        assert set(weights) == {"AAPL", "JPM", "KO", "XOM", "CASH"} and sum(weights.values()) == pytest.approx(1.0)
        again = client.post("/v1/accounts/acct/bars", headers=AUTH,
                            json=_payload(bars[bars["timestamp"] == stamps[-3]]))
        assert again.status_code == 200 and again.json()["steps"] == []           # nothing new: nothing done
        clash = bars[bars["timestamp"] == stamps[-3]].assign(close=lambda f: f["close"] * 1.01)
        assert client.post("/v1/accounts/acct/bars", headers=AUTH, json=_payload(clash)).status_code == 409
        partial = bars[(bars["timestamp"] == stamps[-2]) & (bars["symbol"] != "KO")]
        refused = client.post("/v1/accounts/acct/bars", headers=AUTH, json=_payload(partial))
        assert refused.status_code == 422 and "KO" in refused.json()["detail"]
        rest = bars[(bars["timestamp"] >= stamps[-2])
                    & ~((bars["timestamp"] == stamps[-2]) & (bars["symbol"] != "KO"))]
        assert client.post("/v1/accounts/acct/bars", headers=AUTH, json=_payload(rest)).status_code == 200
        assert client.post("/v1/accounts/nobody/bars", headers=AUTH, json=_payload(rest)).status_code == 404
        book = client.get("/v1/accounts/acct", headers=AUTH).json()
        assert pd.Timestamp(book["last_bar"]) == stamps[-1] and book["equity"] > 0
        gauges = dict(line.rsplit(" ", 1) for line in client.get("/metrics").text.splitlines()
                      if line.startswith("tradepipe_account_"))
        assert float(gauges['tradepipe_account_equity{account="acct"}']) == pytest.approx(book["equity"])
        assert float(gauges['tradepipe_account_halted{account="acct"}']) == 0.0
        served_requests = [line for line in client.get("/metrics").text.splitlines()
                           if line.startswith("tradepipe_http_requests_total{")]
        posts = [line for line in served_requests if 'endpoint="/v1/accounts/{account}/bars"' in line]
        assert sorted(line.split('status="')[1].split('"')[0] for line in posts) == ["200", "401", "404", "409",
                                                                                      "422"]
        assert not any('endpoint="other"' in line or "/v1/accounts/acct" in line for line in served_requests)
    logged = read_live_log(served / LIVE_BARS_LOG)                                  # the posted bars survive a restart
    assert sorted(logged["timestamp"].unique()) == stamps[-3:]
    posted = bars[bars["timestamp"] >= stamps[-3]].set_index(["timestamp", "symbol"])["close"]
    assert logged.set_index(["timestamp", "symbol"])["close"].sort_index().equals(posted.sort_index())  # exactly
    reopened = open_desk(served, load_params(served / "params.yaml"),
                         tracking_uri=f"sqlite:///{served / 'mlflow.db'}")
    assert reopened.timestamps[-1] == stamps[-1]
    offline_trader = _desk(offline, stamps[-6])
    for bar in offline_trader.pending_bars("acct"):
        offline_trader.step("acct", bar)
    a, b = _targets(served), _targets(offline)
    assert len(a) == 6 and list(a["bar"]) == list(b["bar"])
    np.testing.assert_array_equal(np.array([np.asarray(yaml.safe_load(t)) for t in a["target"]]),
                                  np.array([np.asarray(yaml.safe_load(t)) for t in b["target"]]))


def test_the_server_checkpoints_the_trade_store_and_the_ledger_off_the_steps(
        tmp_path: Path, bars: pd.DataFrame, stamps: list[pd.Timestamp], tiny_policy: Path,
        publish_champion: Callable[[str, Path], str]) -> None:
    """A few steps write far fewer pages than SQLite's automatic checkpoint waits for: their rows reach the database
    files while the server runs only because its checkpoint thread copies them in."""
    root = _project(tmp_path / "served", bars[bars["timestamp"] <= stamps[-3]])
    publish_champion(f"sqlite:///{root / 'mlflow.db'}", tiny_policy)
    trader = _desk(root, stamps[-4])
    app = create_app(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", token=TOKEN, poll_seconds=0, paper=(root, trader))
    with TestClient(app) as client:
        new = _payload(bars[bars["timestamp"] > stamps[-3]])
        answer = client.post("/v1/accounts/acct/bars", headers=AUTH, json=new)
        assert answer.status_code == 200 and len(answer.json()["steps"]) == 4, answer.text  # from the opening bar

        def in_the_files() -> tuple[int, int]:
            return (rows_in_the_file(root / "trades.db", "equity", tmp_path),
                    rows_in_the_file(root / "paper_broker.db", "broker_fills", tmp_path))
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not (in_the_files()[0] == 4 and in_the_files()[1] > 0):
            time.sleep(0.1)
        equity_rows, broker_fills = in_the_files()
        assert equity_rows == 4 and broker_fills == 12


def test_step_workers_decide_as_the_serving_process_would_and_a_killed_one_is_replaced(
        tmp_path: Path, bars: pd.DataFrame, stamps: list[pd.Timestamp], tiny_policy: Path,
        publish_champion: Callable[[str, Path], str]) -> None:
    served, offline = _project(tmp_path / "served", bars[bars["timestamp"] <= stamps[-4]]), \
        _project(tmp_path / "offline", bars)
    for root in (served, offline):
        publish_champion(f"sqlite:///{root / 'mlflow.db'}", tiny_policy)
    accounts = ("acct", "b")
    trader = _desk(served, stamps[-6], accounts)
    app = create_app(tracking_uri=f"sqlite:///{served / 'mlflow.db'}", token=TOKEN, poll_seconds=0,
                     paper=(served, trader), step_workers=2)
    workers = app.state.step_workers
    assert sorted(workers.owner(a) for a in accounts) == [0, 1]                  # one account in each worker
    with TestClient(app) as client:
        def post(account: str, stamp: pd.Timestamp) -> list[str]:
            answer = client.post(f"/v1/accounts/{account}/bars", headers=AUTH,
                                 json=_payload(bars[bars["timestamp"] == stamp]))
            assert answer.status_code == 200, answer.text
            return [s["status"] for s in answer.json()["steps"]]
        assert post("acct", stamps[-3]) == ["traded"] * 4                        # catches up, then the new bar
        assert post("b", stamps[-3]) == ["traded"] * 4                       # the bar known: not sent twice
        killed = workers.workers[workers.owner("b")].process
        killed.kill()
        killed.join()
        for stamp in stamps[-2:]:
            assert post("b", stamp) == ["traded"] and post("acct", stamp) == ["traded"]
        assert workers.workers[workers.owner("b")].process.pid != killed.pid  # started again
        assert {trader._live[a][1].last for a in accounts} == {stamps[-1]}   # the front computed the rows ahead
        book = client.get("/v1/accounts/b", headers=AUTH).json()
        assert pd.Timestamp(book["last_bar"]) == stamps[-1]
    logged = read_live_log(served / LIVE_BARS_LOG)
    assert sorted(logged["timestamp"].unique()) == stamps[-3:] and not logged.duplicated(["timestamp", "symbol"]).any()
    offline_trader = _desk(offline, stamps[-6], accounts)
    for account in accounts:
        for bar in offline_trader.pending_bars(account):
            offline_trader.step(account, bar)
        a, b = _targets(served, account), _targets(offline, account)
        assert len(a) == 6 and list(a["bar"]) == list(b["bar"])
        np.testing.assert_array_equal(np.array([np.asarray(yaml.safe_load(t)) for t in a["target"]]),
                                      np.array([np.asarray(yaml.safe_load(t)) for t in b["target"]]))


def test_a_step_worker_that_cannot_open_the_desk_fails_the_step_with_the_reason(
        tmp_path: Path, bars: pd.DataFrame, stamps: list[pd.Timestamp], tiny_policy: Path,
        publish_champion: Callable[[str, Path], str], caplog: pytest.LogCaptureFixture) -> None:
    """The workers read the bars from the project: gone after the front opened its desk, every step fails (500) with
    the class of what the worker could not do (not a bare broken pipe; the path only in the log), nothing recorded."""
    served = _project(tmp_path / "served", bars[bars["timestamp"] <= stamps[-2]])
    publish_champion(f"sqlite:///{served / 'mlflow.db'}", tiny_policy)
    trader = _desk(served, stamps[-4])
    (served / BARS).unlink()
    app = create_app(tracking_uri=f"sqlite:///{served / 'mlflow.db'}", token=TOKEN, poll_seconds=0,
                     paper=(served, trader), step_workers=2)
    new_bar = bars["timestamp"] == stamps[-1]
    with TestClient(app) as client, caplog.at_level(logging.ERROR, logger="tradepipe.serving.accounts"):
        for _ in range(2):  # the dead worker is started again, and fails again
            answer = client.post("/v1/accounts/acct/bars", headers=AUTH, json=_payload(bars[new_bar]))
            assert answer.status_code == 500
            assert "'acct' failed (TradingError; the server log has the reason)" in answer.json()["detail"]
            assert str(served) not in answer.text
    assert re.search(r"could not open the desk: TradingError: .*bars.* does not exist", caplog.text)
    assert _targets(served).empty


def test_a_step_that_fails_in_the_serving_process_answers_500_and_records_nothing(
        tmp_path: Path, bars: pd.DataFrame, stamps: list[pd.Timestamp], tiny_policy: Path,
        publish_champion: Callable[[str, Path], str]) -> None:
    """An account on a model version the registry lacks: the step fails with the error's class and what to do,
    the store holds no decision, and the server keeps answering."""
    served = _project(tmp_path / "served", bars[bars["timestamp"] <= stamps[-2]])
    publish_champion(f"sqlite:///{served / 'mlflow.db'}", tiny_policy)
    trader = _desk(served, stamps[-4])
    open_account(trader.store, "ghost", 1e6, "tradepipe-agent", 7, trader.policy("tradepipe-agent", 1).spec.symbols,
                 trader.timestamps, stamps[-4], 300, "simulated")
    trader.broker.open_account("ghost", 1e6)  # type: ignore[attr-defined]
    app = create_app(tracking_uri=f"sqlite:///{served / 'mlflow.db'}", token=TOKEN, poll_seconds=0,
                     paper=(served, trader))
    with TestClient(app) as client:
        answer = client.post("/v1/accounts/ghost/bars", headers=AUTH,
                             json=_payload(bars[bars["timestamp"] == stamps[-1]]))
        assert answer.status_code == 500, answer.text
        assert re.fullmatch(r"the step of account 'ghost' failed \(\w+Exception; the server log has the reason\): "
                            r"the bars stepped before it stay committed, and posting the bars again steps the rest",
                            answer.json()["detail"])
        assert client.post("/v1/accounts/acct/bars", headers=AUTH,
                           json=_payload(bars[bars["timestamp"] == stamps[-1]])).status_code == 200
    assert _targets(served, "ghost").empty and len(_targets(served)) == 4


def test_a_step_cancelled_while_its_worker_works_leaves_no_answer_for_the_next(
        tmp_path: Path, bars: pd.DataFrame, stamps: list[pd.Timestamp], tiny_policy: Path,
        publish_champion: Callable[[str, Path], str]) -> None:
    """A step given up on (its request cancelled) while the worker computes it runs to its end: its answer does not
    become the next step's (another account of the same worker), and the worker is not replaced."""
    served = _project(tmp_path / "served", bars)
    uri = f"sqlite:///{served / 'mlflow.db'}"
    publish_champion(uri, tiny_policy)
    _desk(served, stamps[-8], ("acct", "b", "c")).store.dispose()
    now = pd.Timestamp.now(tz="UTC")

    async def scenario() -> None:
        workers = StepWorkers(served, uri, 2)
        workers.start()
        try:
            assert [workers.owner(a) for a in ("acct", "b", "c")] == [0, 1, 0]
            _, book = await workers.step_through("acct", stamps[-6], now)
            assert book.account == "acct" and book.last_bar == stamps[-6]
            first = workers.workers[0].process
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(workers.step_through("acct", stamps[-1], now), 0.001)
            results, book = await workers.step_through("c", stamps[-5], now)
            assert book.account == "c" and [r.account for r in results] == ["c"] * 4
            assert workers.workers[0].process is first and first.is_alive()
            results, book = await workers.step_through("acct", stamps[-1], now)  # the cancelled step did them
            assert book.account == "acct" and book.last_bar == stamps[-1] and results == []
        finally:
            workers.stop()

    asyncio.run(scenario())


def test_a_step_worker_decides_with_the_market_rows_the_front_computed_ahead(
        tmp_path: Path, bars: pd.DataFrame, stamps: list[pd.Timestamp], tiny_policy: Path,
        publish_champion: Callable[[str, Path], str], caplog: pytest.LogCaptureFixture) -> None:
    """Rows promised with a step are the rows the worker decides with: the front's real rows give the decision a lone
    desk makes, doctored ones another; a promise whose rows failed to compute leaves the worker to compute them (the
    lone desk's decision again), the front saying why."""
    served, offline = _project(tmp_path / "served", bars), _project(tmp_path / "offline", bars)
    uri = f"sqlite:///{served / 'mlflow.db'}"
    for root in (served, offline):
        publish_champion(f"sqlite:///{root / 'mlflow.db'}", tiny_policy)
    _desk(served, stamps[-5]).store.dispose()
    front = open_desk(served, load_params(served / "params.yaml"), tracking_uri=uri)  # the serving front's trader
    front.policy("tradepipe-agent", 1)
    now = pd.Timestamp.now(tz="UTC")

    def ahead(bar: pd.Timestamp, rows: Callable[[Rows], Rows] | None) -> RowsAhead:
        market = front.market_ahead("acct", bar)
        assert market is not None and market.ready and market.key is not None
        computed = front.market_rows(market)
        assert computed is not None

        async def compute() -> Rows:
            if rows is None:
                raise RuntimeError("the rows could not be computed")
            return rows(computed)
        return RowsAhead((market.key, bar), compute)

    def doctored(rows: Rows) -> Rows:
        return rows[0], rows[1], rows[2] + 3.0, rows[3]

    async def scenario() -> None:
        workers = StepWorkers(served, uri, 2)
        workers.start()
        try:
            async def step(bar: pd.Timestamp, rows_ahead: RowsAhead | None = None) -> None:
                waited = 60 if bar == stamps[-5] else 15  # a promise not kept would hang the worker 30 s
                results, _ = await asyncio.wait_for(workers.step_through("acct", bar, now, rows_ahead), waited)
                assert [r.status for r in results] == ["traded"]
            await step(stamps[-5])
            warm = front.market_ahead("acct", stamps[-4])
            assert warm is not None and not warm.ready and front.market_rows(warm) is None  # built: nothing to send
            await step(stamps[-4])
            with caplog.at_level(logging.WARNING, logger="tradepipe.serving.workers"):
                await step(stamps[-3], ahead(stamps[-3], None))
            assert "the market rows ahead of a step failed (RuntimeError: the rows could not be computed)" \
                in caplog.text
            await step(stamps[-2], ahead(stamps[-2], lambda rows: rows))
            await step(stamps[-1], ahead(stamps[-1], doctored))
        finally:
            workers.stop()

    asyncio.run(scenario())
    lone = _desk(offline, stamps[-5])
    for bar in stamps[-5:]:
        assert lone.step("acct", bar).status == "traded"
    a, b = _targets(served), _targets(offline)
    assert list(a["bar"]) == list(b["bar"]) and len(a) == 5
    targets = [np.array([yaml.safe_load(t) for t in frame["target"]]) for frame in (a, b)]
    np.testing.assert_array_equal(targets[0][:4], targets[1][:4])
    assert np.abs(targets[0][4] - targets[1][4]).max() > 1e-6
