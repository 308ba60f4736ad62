"""Relay MLflow registry webhooks to Airflow: a champion alias set in the MLflow UI deploys it.

MLflow's tracking server (``mlflow server``/``mlflow ui``, any SQL store) POSTs registry events to a webhook
created with :func:`register_champion_webhook`, signed with HMAC-SHA256 over
``"{delivery id}.{timestamp}.{body}"`` (header ``X-MLflow-Signature: v1,<base64>``). The router verifies the
signature and the timestamp, and on ``model_version_alias.created`` for ``tradepipe-agent@champion`` triggers
the ``deploy_champion`` DAG through Airflow's REST API.

Hostile input: the headers are checked first (missing, non-numeric or stale timestamp, oversized id or signature:
401), then the raw body is read up to ``max_body_bytes`` (413 beyond), its HMAC verified, and only then parsed.
Signed deliveries (id and signature) are remembered (:class:`DeliveryLog`, SQLite) while their timestamp is
inside the ``MAX_AGE_S`` window: a replay of a delivery already received answers **409** and triggers nothing
(a delivery whose trigger failed is forgotten again, so MLflow's retry can go through). Where they are kept:
``relay_router(deliveries_path=...)``; :func:`deliveries_path_for` puts them beside a SQLite tracking store, else in
the user's private state directory (``~/.local/state/tradepipe``, mode 0700), never at a predictable path in the
shared temporary directory (where another local user could plant or read the file)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent
from mlflow.webhooks.constants import WEBHOOK_DELIVERY_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER

from mlflow import MlflowClient
from tradepipe.orchestration.airflow_api import AirflowAPI
from tradepipe.registry.versions import AGENT_MODEL, CHAMPION
from tradepipe.serving.limits import DEFAULT_MAX_BODY_BYTES, read_body, truncate
from tradepipe.settings import env_var, settings

MAX_AGE_S = 300  # older deliveries are refused as replays
DEPLOY_DAG = "deploy_champion"
Trigger = Callable[[dict[str, Any]], str]
DELIVERIES_FILE = "webhook-deliveries.sqlite"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MAX_ID, _MAX_SIGNATURE = 200, 200


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """MLflow's webhook signature of ``body``: ``v1,`` + base64 HMAC-SHA256 of ``delivery_id.timestamp.body``."""
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> None:
    """Raise HTTPException(401) unless ``headers`` carry a fresh, valid signature of ``body``."""
    delivery_id, timestamp = check_headers(headers, now)
    signature = headers[WEBHOOK_SIGNATURE_HEADER.lower()]
    if not hmac.compare_digest(sign(secret, delivery_id, str(timestamp), body).encode(), signature.encode()):
        raise HTTPException(401, "invalid webhook signature")


def check_headers(headers: dict[str, str], now: float | None = None) -> tuple[str, int]:
    """The delivery id and timestamp, once the signature headers are present, bounded and fresh; else 401."""
    delivery_id = headers.get(WEBHOOK_DELIVERY_ID_HEADER.lower())
    timestamp = headers.get(WEBHOOK_TIMESTAMP_HEADER.lower())
    signature = headers.get(WEBHOOK_SIGNATURE_HEADER.lower())
    if not (delivery_id and timestamp and signature):
        raise HTTPException(401, "missing webhook signature headers")
    if len(delivery_id) > _MAX_ID or len(signature) > _MAX_SIGNATURE or not signature.isascii():
        raise HTTPException(401, "malformed webhook delivery id or signature header")
    if not _TIMESTAMP.fullmatch(timestamp) or abs((now or time.time()) - int(timestamp)) > MAX_AGE_S:
        raise HTTPException(401, "webhook timestamp malformed or too old")
    return delivery_id, int(timestamp)


class DeliveryLog:
    """Signed deliveries already received (id and signature, with their timestamp), in SQLite at ``path`` (None:
    in memory only); those whose timestamp left the ``MAX_AGE_S`` window are pruned (their replays fail the
    timestamp check anyway). A replay is the same id with the same signature: only the secret's holder can sign
    another body under an id."""

    def __init__(self, path: Path | None = None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False,
                                   isolation_level=None, timeout=10)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS deliveries "
                             "(id TEXT, signature TEXT, timestamp INTEGER, PRIMARY KEY (id, signature))")

    def add(self, delivery_id: str, signature: str, timestamp: int, now: float | None = None) -> bool:
        """Record a delivery; False when it was already there (a replay)."""
        self.prune(now)
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?)",
                                      (delivery_id, signature, timestamp))
        return cursor.rowcount == 1

    def forget(self, delivery_id: str, signature: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM deliveries WHERE id = ? AND signature = ?", (delivery_id, signature))

    def seen(self, delivery_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM deliveries WHERE id = ?", (delivery_id,)).fetchone() is not None

    def prune(self, now: float | None = None) -> None:
        """Drop deliveries whose timestamp is older than the window (with a second's margin)."""
        with self._lock:
            self._db.execute("DELETE FROM deliveries WHERE timestamp < ?", ((now or time.time()) - MAX_AGE_S - 1,))


def deliveries_path_for(tracking_uri: str) -> Path:
    """Where to remember deliveries: beside a SQLite tracking store, else in :func:`private_state_dir`."""
    if tracking_uri.startswith("sqlite:///") and ":memory:" not in tracking_uri:
        return Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]).parent / DELIVERIES_FILE
    return private_state_dir() / DELIVERIES_FILE


def private_state_dir() -> Path:
    """``~/.local/state/tradepipe``, created (or tightened) to mode 0700: this user's only."""
    state = Path.home() / ".local" / "state" / "tradepipe"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    if state.stat().st_mode & 0o077:
        state.chmod(0o700)
    return state


def parse_event(body: bytes) -> dict[str, Any]:
    """The delivery's JSON object, with ``data`` an object; HTTPException(400) naming what is wrong otherwise."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HTTPException(400, f"webhook body is not valid JSON: {truncate(err)}") from err
    if not isinstance(event, dict) or not isinstance(event.setdefault("data", {}), dict):
        raise HTTPException(400, "webhook body must be a JSON object whose `data` is an object")
    return event


def relay_router(secret: str, trigger: Trigger, *, deliveries_path: Path | None = None,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> APIRouter:
    """POST /v1/webhooks/mlflow: verify, refuse replays (409), then ``trigger(conf)`` the deploy DAG for a new
    agent champion. Deliveries are remembered in ``deliveries_path`` (SQLite; None: in memory, for this process
    only; see :func:`deliveries_path_for`); bodies over ``max_body_bytes`` are refused (413)."""
    router = APIRouter()
    deliveries = DeliveryLog(deliveries_path)

    @router.post("/v1/webhooks/mlflow")
    async def mlflow_webhook(request: Request) -> dict[str, Any]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        delivery_id, timestamp = check_headers(headers)  # before the body is read
        body = await read_body(request, max_body_bytes)
        verify(secret, headers, body)
        signature = headers[WEBHOOK_SIGNATURE_HEADER.lower()]
        if not await run_in_threadpool(deliveries.add, delivery_id, signature, timestamp):
            raise HTTPException(409, f"delivery {delivery_id!r} already received: replay ignored")
        try:
            return await _handle(body)
        except HTTPException as exc:
            if exc.status_code >= 500:
                deliveries.forget(delivery_id, signature)  # not handled: let MLflow's retry through
            raise
        except Exception:
            deliveries.forget(delivery_id, signature)
            raise

    async def _handle(body: bytes) -> dict[str, Any]:
        event = parse_event(body)
        data = event["data"]
        if (event.get("entity"), event.get("action")) != ("model_version_alias", "created") or \
                (data.get("name"), data.get("alias")) != (AGENT_MODEL, CHAMPION):
            return {"triggered": None}
        if not isinstance(data.get("version"), str | int) or not str(data["version"]).isdigit():
            raise HTTPException(422, f"{AGENT_MODEL}@{CHAMPION} delivery without a model version number in "
                                     f"data.version: {str(data.get('version'))[:100]!r}")
        run_id = await run_in_threadpool(trigger, {"version": str(data["version"]), "source": "mlflow-webhook"})
        return {"triggered": run_id}

    return router


def relay_router_from_env(deliveries_path: Path | None = None, *,
                          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> APIRouter:
    """The relay with the secret from TRADEPIPE_WEBHOOK_SECRET, triggering through :meth:`AirflowAPI.from_env`;
    deliveries remembered in ``deliveries_path`` (default: the private state directory's, see
    :func:`deliveries_path_for`)."""
    secret = settings().webhook_secret
    if secret is None:
        raise ValueError(f"set {env_var('webhook_secret')} to the secret MLflow signs webhook deliveries with")
    airflow = AirflowAPI.from_env()
    return relay_router(secret.get_secret_value(), lambda conf: airflow.trigger(DEPLOY_DAG, conf),
                        deliveries_path=deliveries_path or deliveries_path_for(""), max_body_bytes=max_body_bytes)


def register_champion_webhook(client: MlflowClient, url: str, secret: str) -> str:
    """Create the MLflow webhook that POSTs alias events to the relay at ``url``; return its id."""
    event = WebhookEvent(WebhookEntity.MODEL_VERSION_ALIAS, WebhookAction.CREATED)
    return client.create_webhook(name="tradepipe-deploy-champion", url=url, events=[event], secret=secret).webhook_id
