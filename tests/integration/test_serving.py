"""Serving: a real MLflow registry (SQLite) with a real tiny policy, over TestClient and real uvicorn HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import mlflow
from tradepipe.agents.policy import TradingPolicy
from tradepipe.monitoring.performance import live_returns
from tradepipe.serving import create_app

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def policy_dir(tiny_policy: Path) -> Path:
    return tiny_policy


@pytest.fixture(scope="module")
def client(registry: str) -> Iterator[TestClient]:
    with TestClient(create_app(tracking_uri=registry, token=TOKEN, poll_seconds=0)) as c:
        assert c.app.state.models.wait_loaded(120)  # type: ignore[attr-defined]  # loads in the background
        yield c


def payload(bars: pd.DataFrame) -> list[dict[str, Any]]:
    return [{"timestamp": ts.isoformat(), "symbol": sym, "close": close}
            for ts, sym, close in bars[["timestamp", "symbol", "close"]].itertuples(index=False)]


@pytest.fixture(scope="module")
def recent(bars: pd.DataFrame, client: TestClient) -> pd.DataFrame:
    return bars.groupby("symbol").tail(client.get("/health").json()["min_bars"] + 20).reset_index(drop=True)


def test_signals_equal_the_registered_pyfunc(client: TestClient, recent: pd.DataFrame, registry: str) -> None:
    response = client.post("/v1/signals", json={"bars": payload(recent)}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["name"] == "tradepipe-agent" and body["model"]["version"] == "1"
    assert body["model"]["alias"] == "champion"
    assert body["model"]["run_id"] == mlflow.MlflowClient(registry).get_model_version("tradepipe-agent", "1").run_id
    assert pd.Timestamp(body["as_of"]) == recent["timestamp"].max()
    mlflow.set_tracking_uri(registry)
    expected = mlflow.pyfunc.load_model("models:/tradepipe-agent/1").predict(
        recent.assign(timestamp=recent["timestamp"].astype(str)))
    assert [w["symbol"] for w in body["weights"]] == ["AAPL", "JPM", "KO", "XOM", "CASH"]
    np.testing.assert_allclose([w["weight"] for w in body["weights"]], expected["weight"], atol=1e-9)
    assert np.isclose(sum(w["weight"] for w in body["weights"]), 1.0)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
def test_signals_and_reload_need_the_token(client: TestClient, recent: pd.DataFrame, headers: dict[str, str]) -> None:
    assert client.post("/v1/signals", json={"bars": payload(recent)}, headers=headers).status_code == 401
    assert client.post("/v1/reload", headers=headers).status_code == 401


def _bad_requests(recent: pd.DataFrame) -> list[tuple[str, Any, str]]:
    good = payload(recent)
    return [
        ("malformed JSON", '{"bars": [', "JSON decode error"),
        ("not an object", "[1, 2]", "body"),
        ("missing close", {"bars": [{k: v for k, v in b.items() if k != "close"} for b in good]},
         "close: Field required"),
        ("unknown symbol", {"bars": [*good, {**good[-1], "symbol": "ZZZZ"}]}, "unknown symbols: ['ZZZZ']"),
        ("missing symbol", {"bars": [b for b in good if b["symbol"] != "KO"]}, "missing symbols: ['KO']"),
        ("too few bars", {"bars": payload(recent.groupby("symbol").tail(10))}, "too few bars for the feature warm-up"),
        ("NaN price", '{"bars": [' + ", ".join(
            f'{{"timestamp": "{b["timestamp"]}", "symbol": "{b["symbol"]}", '
            f'"close": {"NaN" if i == 3 else b["close"]}}}' for i, b in enumerate(good)) + "]}",
         "bars[3].close: Input should be a finite number"),
        ("negative price", {"bars": [{**b, "close": -1.0} if i == 0 else b for i, b in enumerate(good)]},
         "bars[0].close: Input should be greater than 0"),
        ("bad timestamp", {"bars": [{**good[0], "timestamp": "yesterday"}, *good[1:]]}, "bars[0].timestamp"),
        ("duplicate bars", {"bars": [*good, good[-1]]}, "1 duplicate (timestamp, symbol) bars"),
        ("ragged ends", {"bars": good[:-1]}, "every symbol must end at the same timestamp"),
        ("extra column", {"bars": [{**good[0], "adj_close": 1.0}, *good[1:]]}, "adj_close: Extra inputs"),
        ("no bars", {"bars": []}, "bars: List should have at least 1 item"),
    ]


@pytest.mark.parametrize("case", range(13))
def test_bad_requests_say_what_is_wrong(client: TestClient, recent: pd.DataFrame, case: int) -> None:
    name, body, message = _bad_requests(recent)[case]
    kwargs: dict[str, Any] = {"content": body, "headers": {**AUTH, "Content-Type": "application/json"}} \
        if isinstance(body, str) else {"json": body, "headers": AUTH}
    response = client.post("/v1/signals", **kwargs)
    assert response.status_code == 422, (name, response.text)
    assert message in response.json()["detail"], (name, response.json())


def test_health_and_metrics(client: TestClient, recent: pd.DataFrame) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"]["version"] == "1"
    assert health["symbols"] == ["AAPL", "JPM", "KO", "XOM"] and health["min_bars"] == 54  # SMA(50) + seq_len 5 - 1
    before = _samples(client)
    client.post("/v1/signals", json={"bars": payload(recent)}, headers=AUTH)
    client.post("/v1/signals", json={"bars": []}, headers=AUTH)
    after = _samples(client)
    key = ("tradepipe_http_requests_total", (("endpoint", "/v1/signals"), ("method", "POST"), ("status", "200")))
    assert after[key] - before.get(key, 0.0) == 1.0
    key422 = (key[0], (*key[1][:2], ("status", "422")))
    assert after[key422] - before.get(key422, 0.0) == 1.0
    count = ("tradepipe_http_request_duration_seconds_count", (("endpoint", "/v1/signals"),))
    assert after[count] - before.get(count, 0.0) == 2.0
    assert after[("tradepipe_model_version", (("name", "tradepipe-agent"),))] == 1.0
    registered = after[("tradepipe_model_registered_timestamp_seconds", (("name", "tradepipe-agent"),))]
    assert 0 <= time.time() - registered < 3600  # the fixture registered it moments ago (model expiry's clock)
    info = [k for k in after if k[0] == "tradepipe_model_info"]
    assert len(info) == 1 and ("version", "1") in info[0][1] and ("alias", "champion") in info[0][1]


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_no_champion_yet_then_reload(policy_dir: Path, recent: pd.DataFrame, tmp_path: Path,
        publish_champion: Callable[[str, Path], str]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with TestClient(create_app(tracking_uri=uri, token=TOKEN, poll_seconds=0, load_attempts=1)) as c:
        assert not c.app.state.models.wait_loaded(60)  # type: ignore[attr-defined]
        assert c.get("/health").status_code == 503
        response = c.post("/v1/signals", json={"bars": payload(recent)}, headers=AUTH)
        assert response.status_code == 503 and "no model loaded" in response.json()["detail"]
        assert c.post("/v1/reload", headers=AUTH).status_code == 502
        publish_champion(uri, policy_dir)
        reload = c.post("/v1/reload", headers=AUTH).json()
        assert reload["outcome"] == "swapped" and reload["previous"] is None and reload["current"]["version"] == "1"
        assert c.post("/v1/reload", headers=AUTH).json()["outcome"] == "unchanged"
        assert c.post("/v1/signals", json={"bars": payload(recent)}, headers=AUTH).status_code == 200


def test_background_poll_follows_the_alias(policy_dir: Path, tmp_path: Path,
        publish_champion: Callable[[str, Path], str]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    publish_champion(uri, policy_dir)
    with TestClient(create_app(tracking_uri=uri, token=TOKEN, poll_seconds=0.2)) as c:
        assert c.app.state.models.wait_loaded(120)  # type: ignore[attr-defined]
        assert c.get("/health").json()["model"]["version"] == "1"
        publish_champion(uri, policy_dir)
        deadline = time.monotonic() + 60
        while c.get("/health").json()["model"]["version"] != "2" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert c.get("/health").json()["model"]["version"] == "2"


@pytest.fixture
def served(policy_dir: Path, tmp_path: Path, publish_champion: Callable[[str, Path], str]) -> Iterator[tuple[str, str]]:
    """The app under real uvicorn on a loopback port, on its own registry: (base URL, tracking URI)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    publish_champion(uri, policy_dir)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(tracking_uri=uri, token=TOKEN, poll_seconds=0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    assert app.state.models.wait_loaded(120)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", uri
    server.should_exit = True
    thread.join(timeout=10)


def test_champion_switch_drops_no_request(served: tuple[str, str], policy_dir: Path, recent: pd.DataFrame,
        publish_champion: Callable[[str, Path], str]) -> None:
    base, uri = served
    body = {"bars": payload(recent)}
    seen: list[list[tuple[int, str]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def hammer(out: list[tuple[int, str]]) -> None:
        with httpx.Client(base_url=base, headers=AUTH, timeout=30) as http:
            while not stop.is_set():
                r = http.post("/v1/signals", json=body)
                out.append((r.status_code, r.json()["model"]["version"] if r.status_code == 200 else r.text))

    workers = [threading.Thread(target=hammer, args=(out,)) for out in seen]
    for w in workers:
        w.start()
    time.sleep(1.0)
    assert publish_champion(uri, policy_dir) == "2"
    reload = httpx.post(f"{base}/v1/reload", headers=AUTH, timeout=60).json()
    assert reload["outcome"] == "swapped" and reload["previous"]["version"] == "1"
    time.sleep(1.0)
    stop.set()
    for w in workers:
        w.join()
    answers = [a for out in seen for a in out]
    assert answers and all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    for out in seen:  # each client sees version 1, then version 2, never back
        versions = [v for _, v in out]
        assert versions[-1] == "2" and versions == sorted(versions)
    assert any(v == "1" for _, v in answers)


def test_live_returns_count_only_bars_after_the_fit_end(policy_dir: Path, bars: pd.DataFrame) -> None:
    """The monitor's live window (same tiny policy): out-of-sample bars only, when the fit end is known."""
    policy = TradingPolicy.load(policy_dir)
    timestamps = pd.DatetimeIndex(sorted(bars["timestamp"].unique()))
    everything = live_returns(policy, bars, 63)
    assert len(everything) == 62 and everything.index[0] == timestamps[-62]
    unseen = live_returns(policy, bars, 63, fitted_until=timestamps[-11])  # 10 bars after the fit end
    assert list(unseen.index) == list(timestamps[-9:])  # the first of them only decides
    assert np.isfinite(unseen.to_numpy()).all()
    assert live_returns(policy, bars, 63, fitted_until=timestamps[-2]).empty  # one unseen bar: nothing to judge
    assert live_returns(policy, bars, 63, fitted_until=timestamps[-1]).empty
    assert len(live_returns(policy, bars, 63, fitted_until=timestamps[0])) == 62  # capped by the recent window
