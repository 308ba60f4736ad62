"""The FastAPI app: ``POST /v1/signals``, ``POST /v1/reload``, ``GET /health``, ``GET /metrics`` and, when given,
the MLflow webhook relay (``POST /v1/webhooks/mlflow``)."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from tradepipe.serving.limits import DEFAULT_MAX_BODY_BYTES, MAX_MESSAGE, read_body, redact, truncate
from tradepipe.serving.metrics import MetricsMiddleware, ServingMetrics
from tradepipe.serving.models import ModelHolder, ModelRef, ReloadError, ServedModel
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


def _validation_message(errors: Sequence[Any], skip: int = 1) -> str:
    """``loc: msg`` per error (the first ``skip`` loc parts dropped), every part bounded: locs can be client keys."""
    parts = []
    for error in errors[:10]:
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{truncate(p, 60)}" for p in error["loc"][skip:])
        msg = "JSON decode error" if error["type"] == "json_invalid" else ""
        parts.append(f"{loc.lstrip('.') or 'body'}: {msg + ': ' if msg else ''}{truncate(error['msg'])}")
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return truncate("; ".join(parts), MAX_MESSAGE) + more


def create_app(model_uri: str = DEFAULT_MODEL_URI, *, tracking_uri: str, token: str, poll_seconds: float = 30.0,
               relay: APIRouter | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The serving app for ``model_uri`` in the registry at ``tracking_uri`` (already resolved, see
    :func:`tradepipe.runtime.tracking.resolve_tracking_uri`); ``token`` guards /v1/signals and /v1/reload; the alias
    is re-read every ``poll_seconds`` (0 disables polling; ``POST /v1/reload`` or ``app.state.models.reload()``
    reload on demand). ``relay`` (see :mod:`tradepipe.orchestration.relay`) is mounted as is: it authenticates by
    HMAC signature.

    Hostile input: the token is checked before the body is read; bodies over ``max_body_bytes`` are refused (413,
    by Content-Length and while streaming); bars, symbols and error messages are bounded (see
    :mod:`tradepipe.serving.schemas`, :mod:`tradepipe.serving.limits`); /health shows a reason code, never the
    error itself (that goes to the log).
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
            log.error("no model served yet: %s", redact(str(exc)))
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
        return JSONResponse({"detail": _validation_message(exc.errors())}, status_code=422)

    @app.post("/v1/signals", dependencies=[Depends(_authorized)])
    async def signals(request: Request) -> SignalsResponse:
        """Target weights after the last bar, from the model served when the request arrived. The body (a
        SignalsRequest) is read only after the token was checked, and only up to ``max_body_bytes``."""
        raw = await read_body(request, max_body_bytes)
        try:
            body = SignalsRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise HTTPException(422, _validation_message(exc.errors(), skip=0)) from exc
        served = holder.current
        if served is None:
            raise HTTPException(503, f"no model loaded from {model_uri}: {holder.last_reason}")
        return await run_in_threadpool(_answer, served, body)

    def _answer(served: ServedModel, body: SignalsRequest) -> SignalsResponse:
        bars = body.frame()
        try:
            check_bars(bars, served.policy, served.min_bars)
        except BadRequest as exc:
            raise HTTPException(422, truncate(str(exc), MAX_MESSAGE)) from exc
        weights = served.policy.target_weights(bars)  # the registered pyfunc's answer, replayed over ``bars``
        return SignalsResponse(model=_info(served.ref), as_of=bars["timestamp"].max(),
                               weights=[Weight(symbol=s, weight=float(w)) for s, w in weights.items()])

    @app.post("/v1/reload", dependencies=[Depends(_authorized)])
    def reload_endpoint() -> ReloadResponse:
        """Re-read the alias; load and swap in a new version (in-flight requests finish on the old one)."""
        try:
            result = holder.reload()
        except ReloadError as exc:
            raise HTTPException(502, f"reload failed, still serving the previous model: {exc.reason}") from exc
        return ReloadResponse(outcome=result.outcome, previous=_info(result.previous) if result.previous else None,
                              current=_info(result.current))

    @app.get("/health")
    def health() -> JSONResponse:
        """200 with the served version once a model is loaded, else 503 with the reason: a code and an exception
        class (``resolve_failed: MlflowException``), never its message, which may hold credentials or SQL."""
        served = holder.current
        if served is None:
            return JSONResponse({"status": "unavailable", "model_uri": model_uri, "reason": holder.last_reason}, 503)
        return JSONResponse({"status": "ok", "model_uri": model_uri, "model": _info(served.ref).model_dump(),
                             "symbols": served.policy.spec.symbols, "min_bars": served.min_bars,
                             "last_reload_error": holder.last_reason})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if relay is not None:
        app.include_router(relay)
    app.add_middleware(MetricsMiddleware, metrics=metrics,
                       routes=frozenset(r.path for r in app.routes if hasattr(r, "path")))
    return app
