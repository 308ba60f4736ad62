"""Hostile input against the serving app and the webhook relay (issue 16): memory, secrets, replays, types."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradepipe.orchestration.relay import relay_router, sign
from tradepipe.serving import create_app

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "hook-s3cret"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def client(registry: str) -> Iterator[TestClient]:
    with TestClient(create_app(tracking_uri=registry, token=TOKEN, poll_seconds=0)) as c:
        assert c.app.state.models.wait_loaded(120)  # type: ignore[attr-defined]  # loads in the background
        yield c


@pytest.fixture(scope="module")
def good(bars: pd.DataFrame, client: TestClient) -> list[dict[str, Any]]:
    """A valid request's bars (enough per symbol for the warm-up)."""
    recent = bars.groupby("symbol").tail(client.get("/health").json()["min_bars"] + 5)
    return [{"timestamp": ts.isoformat(), "symbol": sym, "close": close}
            for ts, sym, close in recent[["timestamp", "symbol", "close"]].itertuples(index=False)]


# -- finding 1: memory for anyone ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SERVER = """
import sys, uvicorn
from tradepipe.serving import create_app
uvicorn.run(create_app(tracking_uri=sys.argv[1], token=sys.argv[2], poll_seconds=0),
            host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
"""


@pytest.fixture(scope="module")
def server_process(registry: str) -> Iterator[tuple[str, psutil.Process]]:
    """The app under real uvicorn in a child process (its RSS is the server's alone), on the champion registry."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, registry, TOKEN, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
    yield base, psutil.Process(proc.pid)
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_unauthenticated_200mb_body_is_refused_in_bounded_memory(
        server_process: tuple[str, psutil.Process], framing: str) -> None:
    base, proc = server_process
    total, chunk = 200 * MB, b'{"timestamp": "2020-01-01", "symbol": "AAPL", "close": 1.0}, ' * (MB // 60)
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"bars": ['
        while sent < total:
            piece = chunk[:total - sent]
            sent += len(piece)
            yield piece

    headers = {"Content-Type": "application/json"}
    if framing == "content-length":
        headers["Content-Length"] = str(total + len(b'{"bars": ['))
    before = proc.memory_info().rss
    peak, stop = before, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    status: int | str
    try:
        status = httpx.post(f"{base}/v1/signals", content=body(), headers=headers, timeout=120).status_code
    except httpx.TransportError as exc:  # the server answered and closed while we were still sending
        status = type(exc).__name__
    finally:
        time.sleep(0.3)
        stop.set()
        sampler.join()
    after = proc.memory_info().rss
    print(f"\n[{framing}] server RSS before {before / MB:.1f} MiB, peak {peak / MB:.1f} MiB, after {after / MB:.1f} "
          f"MiB; client sent {sent / MB:.1f} MiB of {total / MB:.0f} MiB; answer {status}")
    assert status in (401, 413) or (isinstance(status, str) and sent < total), status
    assert peak - before < 100 * MB, (before, peak)
    # and the server still answers
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200


def test_unauthenticated_malformed_json_is_401_not_422(client: TestClient) -> None:
    response = client.post("/v1/signals", content=b'{"bars": [', headers={"Content-Type": "application/json"})
    assert response.status_code == 401


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_authenticated_body_over_the_limit_is_413(registry: str, framing: str) -> None:
    app = create_app(tracking_uri=registry, token=TOKEN, poll_seconds=0, max_body_bytes=1000)
    payload = b'{"bars": [' + b" " * 5000 + b"]}"
    content: bytes | Iterator[bytes] = payload if framing == "content-length" else iter([payload[:10], payload[10:]])
    with TestClient(app) as c:
        response = c.post("/v1/signals", content=content, headers={**AUTH, "Content-Type": "application/json"})
        assert response.status_code == 413, response.text
        assert "1000" in response.json()["detail"]
        assert c.post("/v1/signals", content=b"{}", headers=AUTH).status_code == 422  # small bodies still read


# -- finding 2: /health leaks secrets -----------------------------------------------------------------------------


def test_health_hides_credentials_of_the_tracking_uri(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uri = f"http://user:hunter2pw@127.0.0.1:{_free_port()}"
    with TestClient(create_app(tracking_uri=uri, token=TOKEN, poll_seconds=0, load_attempts=1)) as c:
        assert not c.app.state.models.wait_loaded(60)  # type: ignore[attr-defined]
        health = c.get("/health")
        assert health.status_code == 503
        assert "hunter2pw" not in health.text and "user:" not in health.text, health.text
        assert health.json()["status"] == "unavailable" and health.json()["reason"].startswith("resolve_failed")
        signals = c.post("/v1/signals", json={"bars": []}, headers=AUTH)
        reload = c.post("/v1/reload", headers=AUTH)
        for r in (signals, reload):
            assert "hunter2pw" not in r.text, r.text
    assert "hunter2pw" not in caplog.text


def test_health_shows_no_sql(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    app = create_app(tracking_uri=f"sqlite:///{db}", token=TOKEN, poll_seconds=0, load_attempts=1)  # makes tables
    with sqlite3.connect(db) as conn:  # a broken store: reading the alias fails with SQLAlchemy's statement
        conn.execute("DROP TABLE registered_model_aliases")
    with TestClient(app) as c:
        assert not app.state.models.wait_loaded(60)
        health = c.get("/health")
        assert health.status_code == 503
        text = health.text.upper()
        assert "SELECT" not in text and "SQL" not in text.replace("SQLITE", ""), health.text
        assert str(tmp_path) not in health.text


# -- finding 3: webhook replays -----------------------------------------------------------------------------------


def _relay_app(tmp_path: Path, **kwargs: Any) -> tuple[TestClient, list[dict[str, object]]]:
    triggered: list[dict[str, object]] = []

    def trigger(conf: dict[str, object]) -> str:
        triggered.append(conf)
        return f"run-{len(triggered)}"

    router = relay_router(SECRET, trigger, **kwargs)
    app = create_app(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", token=TOKEN, relay=router)
    return TestClient(app), triggered


def _champion(version: str = "7", delivery: str = "d-1", ts: int | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"entity": "model_version_alias", "action": "created", "timestamp": "t",
                       "data": {"name": "tradepipe-agent", "alias": "champion", "version": version}}).encode()
    stamp = str(int(time.time()) if ts is None else ts)
    return body, {"X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": stamp,
                  "X-MLflow-Signature": sign(SECRET, delivery, stamp, body), "Content-Type": "application/json"}


def test_relay_refuses_a_replayed_delivery(tmp_path: Path) -> None:
    client, triggered = _relay_app(tmp_path, deliveries_path=tmp_path / "deliveries.sqlite")
    body, headers = _champion()
    answers = [client.post("/v1/webhooks/mlflow", content=body, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 409, 409], [a.text for a in answers]
    assert "already" in answers[1].json()["detail"]
    assert len(triggered) == 1
    body2, headers2 = _champion(delivery="d-2")  # another delivery goes through
    assert client.post("/v1/webhooks/mlflow", content=body2, headers=headers2).status_code == 200


def test_relay_remembers_deliveries_across_restarts_and_forgets_them_after_the_window(tmp_path: Path) -> None:
    path = tmp_path / "deliveries.sqlite"
    first, _ = _relay_app(tmp_path, deliveries_path=path)
    body, headers = _champion()
    assert first.post("/v1/webhooks/mlflow", content=body, headers=headers).status_code == 200
    restarted, triggered = _relay_app(tmp_path, deliveries_path=path)
    assert restarted.post("/v1/webhooks/mlflow", content=body, headers=headers).status_code == 409
    assert triggered == []
    # an old delivery (within the window when recorded) is pruned once the window has passed
    old_body, old_headers = _champion(delivery="d-old", ts=int(time.time()) - 290)
    assert restarted.post("/v1/webhooks/mlflow", content=old_body, headers=old_headers).status_code == 200
    from tradepipe.orchestration.relay import DeliveryLog

    log = DeliveryLog(path)
    assert log.seen("d-old") and log.seen("d-1")
    log.prune(now=time.time() + 60)
    assert not log.seen("d-old") and log.seen("d-1")


@pytest.mark.parametrize("stamp", ["9" * 309, "1" * 40, "\u00b2\u00b3", "-5", "12a", "1.5e9", ""])
def test_relay_malformed_timestamp_is_401(tmp_path: Path, stamp: str) -> None:
    client, triggered = _relay_app(tmp_path)
    body, headers = _champion()
    headers["X-MLflow-Timestamp"] = stamp
    headers["X-MLflow-Signature"] = sign(SECRET, "d-1", stamp, body)
    raw = [(k.encode(), v.encode("latin-1", "replace")) for k, v in headers.items()]
    response = client.post("/v1/webhooks/mlflow", content=body, headers=httpx.Headers(raw))
    assert response.status_code == 401, response.text
    assert triggered == []


@pytest.mark.parametrize("signature", ["v1,\u00e9\u00e9", "\u00ff" * 50, "x" * 10_000, "v1,"])
def test_relay_malformed_signature_is_401(tmp_path: Path, signature: str) -> None:
    client, triggered = _relay_app(tmp_path)
    body, headers = _champion()
    raw = [(k.encode(), v.encode("latin-1")) for k, v in {**headers, "X-MLflow-Signature": signature}.items()]
    response = client.post("/v1/webhooks/mlflow", content=body, headers=httpx.Headers(raw))
    assert response.status_code == 401, response.text
    assert triggered == []


def test_relay_body_over_the_limit_is_413_before_the_signature(tmp_path: Path) -> None:
    client, triggered = _relay_app(tmp_path, max_body_bytes=1000)
    body, headers = _champion()
    big = body[:-1] + b", " + b'"pad": "' + b"x" * 5000 + b'"}'
    headers["X-MLflow-Signature"] = sign(SECRET, "d-1", headers["X-MLflow-Timestamp"], big)
    assert client.post("/v1/webhooks/mlflow", content=big, headers=headers).status_code == 413
    assert client.post("/v1/webhooks/mlflow", content=iter([big[:10], big[10:]]), headers=headers).status_code == 413
    assert triggered == []


def test_relay_unsigned_request_is_401_before_the_body_is_read(tmp_path: Path) -> None:
    client, _ = _relay_app(tmp_path, max_body_bytes=1000)
    response = client.post("/v1/webhooks/mlflow", content=b"x" * 5000)
    assert response.status_code == 401


# -- finding 4: types, ranges, bounded messages -------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("close", True), ("close", "123.5"), ("close", False), ("open", True), ("volume", "5"), ("volume", True),
    ("timestamp", "9018-01-01T00:00:00"), ("timestamp", "1700-01-01T00:00:00"), ("timestamp", "2200-01-01T00:00:00"),
])
def test_strict_prices_and_sane_timestamps(client: TestClient, good: list[dict[str, Any]], field: str,
                                           value: object) -> None:
    bars = [{**good[0], field: value}, *good[1:]]
    response = client.post("/v1/signals", json={"bars": bars}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert f"bars[0].{field}" in response.json()["detail"]


def test_integer_prices_are_still_accepted(client: TestClient, good: list[dict[str, Any]]) -> None:
    bars = [{**b, "close": round(b["close"]) or 1, "volume": 1000} for b in good]
    assert client.post("/v1/signals", json={"bars": bars}, headers=AUTH).status_code == 200


def test_many_unknown_symbols_get_a_short_message(client: TestClient, good: list[dict[str, Any]]) -> None:
    extra = [{**good[-1], "symbol": f"Z{i:07d}"} for i in range(900)]
    response = client.post("/v1/signals", json={"bars": [*good, *extra]}, headers=AUTH)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) < 1000 and "Z0000000" in detail and "890 more" in detail, detail


def test_too_many_distinct_symbols_are_refused(client: TestClient, good: list[dict[str, Any]]) -> None:
    extra = [{**good[-1], "symbol": f"Z{i}"} for i in range(5000)]
    response = client.post("/v1/signals", json={"bars": [*good, *extra]}, headers=AUTH)
    assert response.status_code == 422 and "distinct symbols" in response.json()["detail"]
    assert len(response.json()["detail"]) < 1000


@pytest.mark.parametrize("size", [1000, 1_000_000])
def test_long_symbols_and_field_names_get_a_short_message(client: TestClient, good: list[dict[str, Any]],
                                                         size: int) -> None:
    for bad in ({**good[0], "symbol": "S" * size}, {**good[0], "x" * size: 1}):
        response = client.post("/v1/signals", json={"bars": [bad, *good[1:]]}, headers=AUTH)
        assert response.status_code == 422, response.text[:300]
        assert len(response.json()["detail"]) < 1000, response.text[:300]


# -- property test: no 5xx, and no token is always 401 ------------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                                 max_size=5), max_leaves=20)
_field = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**20, max_value=10**20), st.floats(),
                   st.text(max_size=30), st.sampled_from(["2020-01-01", "2020-01-01T00:00:00Z", "9999-12-31",
                                                          "0001-01-01", "1e309", "NaN", "AAPL", "KO"]))
_bar = st.dictionaries(st.sampled_from(["timestamp", "symbol", "close", "open", "high", "low", "volume", "extra"]),
                       _field, max_size=8)
_body = st.one_of(_json.map(lambda v: json.dumps(v).encode()),
                  st.lists(_bar, max_size=8).map(lambda bars: json.dumps({"bars": bars}).encode()),
                  st.binary(max_size=200))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_body, auth=st.sampled_from([None, AUTH, {"Authorization": "Bearer wrong"}]))
def test_random_bodies_never_answer_5xx(client: TestClient, body: bytes, auth: dict[str, str] | None) -> None:
    response = client.post("/v1/signals", content=body, headers={**(auth or {}), "Content-Type": "application/json"})
    assert response.status_code < 500, (body[:200], response.text[:500])
    if auth is not AUTH:
        assert response.status_code == 401
    else:
        assert response.status_code in (200, 422), response.text[:500]
    assert len(response.text) < 4000

