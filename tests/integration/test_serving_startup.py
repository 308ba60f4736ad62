"""Serving startup against a registry that is down (issue 16, finding 6): listen at once, load in the background.

Before, `tradepipe serve` spent about 254 s in MLflow's HTTP retries before listening, so /health could not say 503
and a reload outlasted switch_serving's 120 s timeout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tradepipe.serving import create_app
from tradepipe.serving.models import REGISTRY_HTTP

TOKEN = "s3cret"
PASSWORD = "hunter2pw"


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts connections and never answers (a registry that hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("access_log", [True, False])
def test_serve_listens_at_once_while_the_registry_hangs(blackhole: int, tmp_path: Path, access_log: bool) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in REGISTRY_HTTP and k != "MLFLOW_TRACKING_URI"}
    env["TRADEPIPE_API_TOKEN"] = TOKEN
    uri = f"http://tradepipe:{PASSWORD}@127.0.0.1:{blackhole}"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tradepipe.cli", "serve", "--port", str(port), "--tracking-uri",
                             uri, "--root", str(tmp_path), "--poll-seconds", "0",
                             *([] if access_log else ["--no-access-log"])],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        health = None
        while time.monotonic() - started < 60 and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        answered_after = time.monotonic() - started
        assert health is not None, proc.stdout.read().decode()[-3000:] if proc.stdout else ""
        # the process needs a few seconds to import; the registry's retries (minutes) are not waited for
        assert answered_after < 30, answered_after
        assert health.status_code == 503
        assert health.json() == {"status": "loading", "model_uri": "models:/tradepipe-agent@champion",
                                 "reason": "loading"}
        signals = httpx.post(f"http://127.0.0.1:{port}/v1/signals", json={"bars": []},
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert signals.status_code == 422  # a bad body is still refused as such
        assert PASSWORD not in health.text + signals.text
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert PASSWORD not in out
    assert ('"GET /health HTTP/1.1" 503' in out) == access_log  # a line per request unless --no-access-log


def test_a_dead_registry_fails_the_load_within_seconds_and_health_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in REGISTRY_HTTP:  # MLflow's defaults would retry 7 times over about 4 minutes
        monkeypatch.setenv(name, "unset below; restored after the test")
        monkeypatch.delenv(name)
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens
    app = create_app(tracking_uri=uri, token=TOKEN, poll_seconds=0, load_attempts=1)
    assert {name: os.environ[name] for name in REGISTRY_HTTP} == REGISTRY_HTTP
    with TestClient(app) as c:
        started = time.monotonic()
        assert not app.state.models.wait_loaded(120)
        assert time.monotonic() - started < 60  # 3 tries, 1 s and 2 s apart (plus jitter), instead of ~254 s
        health = c.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert health.json()["reason"] == "resolve_failed: MlflowException"
