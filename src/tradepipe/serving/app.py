"""The FastAPI app: ``POST /v1/signals``, ``POST /v1/reload``, ``GET /health``, ``GET /metrics`` and, when given,
the MLflow webhook relay (``POST /v1/webhooks/mlflow``)."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tradepipe.serving.metrics import MetricsMiddleware, ServingMetrics
from tradepipe.serving.models import ModelHolder, ModelRef, ReloadError
from tradepipe.serving.schemas import ModelInfo, ReloadResponse, SignalsRequest, SignalsResponse, Weight
from tradepipe.serving.signals import BadRequest, check_bars
from tradepipe.settings import API_TOKEN_ENV

log = logging.getLogger(__name__)
DEFAULT_MODEL_URI = "models:/tradepipe-agent@champion"
_BEARER = HTTPBearer(auto_error=False)


def _authorized(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
    token: str = request.app.state.token
    if creds is None or not secrets.compare_digest(creds.credentials.encode(), token.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def _info(ref: ModelRef) -> ModelInfo:
    return ModelInfo(name=ref.name, version=ref.version, alias=ref.alias, run_id=ref.run_id)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"][1:]).lstrip(".")
        parts.append(f"{loc or 'body'}: {error['msg']}")
    return "; ".join(parts[:10]) + (f" (and {len(parts) - 10} more)" if len(parts) > 10 else "")


def create_app(model_uri: str = DEFAULT_MODEL_URI, *, tracking_uri: str, token: str, poll_seconds: float = 30.0,
               relay: APIRouter | None = None) -> FastAPI:
    """The serving app for ``model_uri`` in the registry at ``tracking_uri`` (already resolved, see
    :func:`tradepipe.runtime.tracking.resolve_tracking_uri`); ``token`` guards /v1/signals and /v1/reload; the alias
    is re-read every ``poll_seconds`` (0 disables polling; ``POST /v1/reload`` or ``app.state.models.reload()``
    reload on demand). ``relay`` (see :mod:`tradepipe.orchestration.relay`) is mounted as is: it authenticates by
    HMAC signature.
    """
    if not token:
        raise ValueError(f"an API token is required (set {API_TOKEN_ENV})")
    if not tracking_uri:
        raise ValueError("a tracking URI is required (resolve it with tradepipe.runtime.tracking.resolve_tracking_uri)")
    metrics = ServingMetrics()
    holder = ModelHolder(model_uri, tracking_uri, on_reload=metrics.reloaded)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            holder.reload()
        except ReloadError as exc:
            log.error("no model served yet: %s", exc)
        stop = threading.Event()
        poller = threading.Thread(target=holder.poll, args=(poll_seconds, stop), daemon=True, name="model-poll")
        if poll_seconds > 0:
            poller.start()
        yield
        stop.set()
        if poller.is_alive():
            poller.join(timeout=5)

    app = FastAPI(title="tradepipe serving", lifespan=lifespan)
    app.state.models, app.state.metrics, app.state.token = holder, metrics, token

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    @app.post("/v1/signals", dependencies=[Depends(_authorized)])
    def signals(body: SignalsRequest) -> SignalsResponse:
        """Target weights after the last bar, from the model served when the request arrived."""
        served = holder.current
        if served is None:
            raise HTTPException(503, f"no model loaded from {model_uri}: {holder.last_error}")
        bars = body.frame()
        try:
            check_bars(bars, served.policy, served.min_bars)
        except BadRequest as exc:
            raise HTTPException(422, str(exc)) from exc
        weights = served.policy.target_weights(bars)  # the registered pyfunc's answer, replayed over ``bars``
        return SignalsResponse(model=_info(served.ref), as_of=bars["timestamp"].max(),
                               weights=[Weight(symbol=s, weight=float(w)) for s, w in weights.items()])

    @app.post("/v1/reload", dependencies=[Depends(_authorized)])
    def reload_endpoint() -> ReloadResponse:
        """Re-read the alias; load and swap in a new version (in-flight requests finish on the old one)."""
        try:
            result = holder.reload()
        except ReloadError as exc:
            raise HTTPException(502, f"reload failed, still serving the previous model: {exc}") from exc
        return ReloadResponse(outcome=result.outcome, previous=_info(result.previous) if result.previous else None,
                              current=_info(result.current))

    @app.get("/health")
    def health() -> JSONResponse:
        """200 with the served version once a model is loaded, else 503 with the reason."""
        served = holder.current
        if served is None:
            return JSONResponse({"status": "unavailable", "model_uri": model_uri, "error": holder.last_error}, 503)
        return JSONResponse({"status": "ok", "model_uri": model_uri, "model": _info(served.ref).model_dump(),
                             "symbols": served.policy.spec.symbols, "min_bars": served.min_bars,
                             "last_reload_error": holder.last_error})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if relay is not None:
        app.include_router(relay)
    app.add_middleware(MetricsMiddleware, metrics=metrics,
                       routes=frozenset(r.path for r in app.routes if hasattr(r, "path")))
    return app
