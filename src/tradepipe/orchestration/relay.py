"""Relay MLflow registry webhooks to Airflow: a champion alias set in the MLflow UI deploys it.

MLflow's tracking server (``mlflow server``/``mlflow ui``, any SQL store) POSTs registry events to a webhook
created with :func:`register_champion_webhook`, signed with HMAC-SHA256 over
``"{delivery id}.{timestamp}.{body}"`` (header ``X-MLflow-Signature: v1,<base64>``). The router verifies the
signature and the timestamp, and on ``model_version_alias.created`` for ``tradepipe-agent@champion`` triggers
the ``deploy_champion`` DAG through Airflow's REST API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent
from mlflow.webhooks.constants import WEBHOOK_DELIVERY_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER

from mlflow import MlflowClient
from tradepipe.orchestration.airflow_api import AirflowAPI
from tradepipe.registry.versions import AGENT_MODEL, CHAMPION
from tradepipe.settings import env_var, settings

MAX_AGE_S = 300  # older deliveries are refused as replays
DEPLOY_DAG = "deploy_champion"
Trigger = Callable[[dict[str, Any]], str]


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """MLflow's webhook signature of ``body``: ``v1,`` + base64 HMAC-SHA256 of ``delivery_id.timestamp.body``."""
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> None:
    """Raise HTTPException(401) unless ``headers`` carry a fresh, valid signature of ``body``."""
    delivery_id = headers.get(WEBHOOK_DELIVERY_ID_HEADER.lower())
    timestamp = headers.get(WEBHOOK_TIMESTAMP_HEADER.lower())
    signature = headers.get(WEBHOOK_SIGNATURE_HEADER.lower())
    if not (delivery_id and timestamp and signature):
        raise HTTPException(401, "missing webhook signature headers")
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > MAX_AGE_S:
        raise HTTPException(401, "webhook timestamp missing or too old")
    if not hmac.compare_digest(sign(secret, delivery_id, timestamp, body), signature):
        raise HTTPException(401, "invalid webhook signature")


def parse_event(body: bytes) -> dict[str, Any]:
    """The delivery's JSON object, with ``data`` an object; HTTPException(400) naming what is wrong otherwise."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HTTPException(400, f"webhook body is not valid JSON: {err}") from err
    if not isinstance(event, dict) or not isinstance(event.setdefault("data", {}), dict):
        raise HTTPException(400, "webhook body must be a JSON object whose `data` is an object")
    return event


def relay_router(secret: str, trigger: Trigger) -> APIRouter:
    """POST /v1/webhooks/mlflow: verify, then ``trigger(conf)`` the deploy DAG for a new agent champion."""
    router = APIRouter()

    @router.post("/v1/webhooks/mlflow")
    async def mlflow_webhook(request: Request) -> dict[str, Any]:
        body = await request.body()
        verify(secret, {k.lower(): v for k, v in request.headers.items()}, body)
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


def relay_router_from_env() -> APIRouter:
    """The relay with the secret from TRADEPIPE_WEBHOOK_SECRET, triggering through :meth:`AirflowAPI.from_env`."""
    secret = settings().webhook_secret
    if secret is None:
        raise ValueError(f"set {env_var('webhook_secret')} to the secret MLflow signs webhook deliveries with")
    airflow = AirflowAPI.from_env()
    return relay_router(secret.get_secret_value(), lambda conf: airflow.trigger(DEPLOY_DAG, conf))


def register_champion_webhook(client: MlflowClient, url: str, secret: str) -> str:
    """Create the MLflow webhook that POSTs alias events to the relay at ``url``; return its id."""
    event = WebhookEvent(WebhookEntity.MODEL_VERSION_ALIAS, WebhookAction.CREATED)
    return client.create_webhook(name="tradepipe-deploy-champion", url=url, events=[event], secret=secret).webhook_id
