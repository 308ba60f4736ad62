"""The bounds of tradepipe.serving.limits: truncation, redaction, reasons, the capped body reader."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from tradepipe.orchestration.relay import deliveries_path_for
from tradepipe.serving.limits import preview, read_body, reason, redact, truncate


def test_truncate_and_preview_bound_what_messages_echo() -> None:
    assert truncate("abc") == "abc"
    assert truncate("x" * 10_000_000) == "x" * 200 + "… (9999800 more chars)"
    assert preview(["A", "B"]) == "['A', 'B']"
    long = preview([f"S{i}" for i in range(5000)])
    assert long.startswith("['S0', 'S1'") and long.endswith(", … 4990 more]") and len(long) < 200
    assert len(preview(["y" * 1_000_000] * 3)) < 1000


@pytest.mark.parametrize(("text", "expected"), [
    ("http://user:password@host:5000/api", "http://***@host:5000/api"),
    ("failed: API request to https://u:p%40ss@mlflow.example.com/x failed", "failed: API request to "
     "https://***@mlflow.example.com/x failed"),
    ("postgresql+psycopg2://admin:pw@db/mlflow", "postgresql+psycopg2://***@db/mlflow"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("no url here", "no url here"),
])
def test_redact_replaces_credentials_in_urls(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_reason_names_the_class_not_the_message() -> None:
    assert reason("load_failed", ValueError("http://u:secret@h SELECT *")) == "load_failed: ValueError"


def _app(limit: int) -> TestClient:
    app = FastAPI()

    @app.post("/")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await read_body(request, limit))}

    return TestClient(app)


def test_read_body_caps_declared_and_streamed_bodies() -> None:
    client = _app(100)
    assert client.post("/", content=b"x" * 100).json() == {"size": 100}
    assert client.post("/", content=b"x" * 101).status_code == 413
    assert client.post("/", content=iter([b"x" * 60, b"x" * 60])).status_code == 413  # chunked, no length
    assert client.post("/", content=iter([b"x" * 50, b"x" * 50])).json() == {"size": 100}
    assert client.post("/", content=b"x", headers={"Content-Length": "9" * 40}).status_code in (400, 413)


def test_deliveries_live_beside_a_sqlite_store_else_in_a_private_dir(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert str(deliveries_path_for("sqlite:////srv/mlflow/mlflow.db")) == "/srv/mlflow/webhook-deliveries.sqlite"
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".local/state/tradepipe").mkdir(parents=True, mode=0o755)  # a loose leftover gets tightened
    path = deliveries_path_for("http://u:p@mlflow:5000")
    assert path == tmp_path / ".local/state/tradepipe/webhook-deliveries.sqlite"
    assert path.parent != Path(tempfile.gettempdir())  # not a path another local user can predict and plant
    assert path.parent.stat().st_mode & 0o777 == 0o700
