"""The team MLflow server with authentication for real (issue 16): `mlflow/server.sh` runs MLflow's basic-auth app
(here on SQLite and a local artifact directory). Anonymous requests are refused; the project's registry and serving
code log in with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD; the password never shows in errors or /health.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlflow import MlflowClient
from tests.fixtures.mlflow_server import running_mlflow_server
from tradepipe.registry.versions import AGENT_MODEL, CHAMPION
from tradepipe.serving import create_app
from tradepipe.serving.models import ModelHolder, ReloadError

ADMIN, PASSWORD = "tradepipe", "auth-test-password-8e1f"
SIGNING_KEY = "a-signing-key-for-the-auth-test-0123456789"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow/server.sh` (basic-auth) on a free loopback port; its URL."""
    base = tmp_path_factory.mktemp("mlflow-auth")
    settings = {"MLFLOW_BACKEND_STORE_URI": f"sqlite:///{base / 'mlflow.db'}",
                "MLFLOW_ARTIFACTS_DESTINATION": (base / "artifacts").as_uri(),
                "MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{base / 'auth.db'}",
                "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN, "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-secret-for-the-test"}
    log = base / "server.log"
    with running_mlflow_server(settings, log) as url:
        yield url
    assert PASSWORD not in log.read_text()


def test_anonymous_requests_are_refused(auth_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{auth_server}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
    assert refused.value.code == 401
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with pytest.raises(Exception, match="401"):
        MlflowClient(auth_server).search_registered_models()


def test_the_project_registers_and_serves_with_credentials(
        auth_server: str, tiny_policy: Path, publish_champion: Callable[[str, Path], str],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    monkeypatch.setenv("TRADEPIPE_SIGNING_KEY", SIGNING_KEY)  # not a SQLite registry: the key comes from the env
    version = publish_champion(auth_server, tiny_policy)  # log, register, sign (download through the server), alias
    assert ModelHolder(f"models:/{AGENT_MODEL}@{CHAMPION}", auth_server).reload().outcome == "swapped"
    app = create_app(tracking_uri=auth_server, token="t", poll_seconds=0)
    with TestClient(app) as c:
        assert app.state.models.wait_loaded(120)
        health = c.get("/health")
    assert health.status_code == 200 and health.json()["model"]["version"] == version
    assert PASSWORD not in health.text and PASSWORD not in caplog.text


def test_a_wrong_password_is_refused_without_echoing_credentials(
        auth_server: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-password-5c2d"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", wrong)
    with pytest.raises(ReloadError) as refused:
        ModelHolder(f"models:/{AGENT_MODEL}@{CHAMPION}", auth_server).reload()
    assert refused.value.reason == "resolve_failed: MlflowException"
    app = create_app(tracking_uri=auth_server, token="t", poll_seconds=0, load_attempts=1)
    with TestClient(app) as c:
        assert not app.state.models.wait_loaded(120)
        health = c.get("/health")
        reload = c.post("/v1/reload", headers={"Authorization": "Bearer t"})
    assert health.status_code == 503 and health.json()["reason"] == "resolve_failed: MlflowException"
    for text in (str(refused.value), health.text, reload.text, caplog.text):
        assert wrong not in text and PASSWORD not in text
