"""The FastAPI app: ``POST /v1/signals``, ``POST /v1/reload``, ``GET /health``, ``GET /metrics`` and, when given,
the MLflow webhook relay (``POST /v1/webhooks/mlflow``) and the paper accounts (``/v1/accounts/{account}``)."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from tradepipe.serving.accounts import accounts_router
from tradepipe.serving.limits import DEFAULT_MAX_BODY_BYTES, MAX_MESSAGE, read_body, truncate
from tradepipe.serving.metrics import MetricsMiddleware, ServingMetrics
from tradepipe.serving.models import (
    LOAD_ATTEMPTS,
    LOADING,
    ModelHolder,
    ModelRef,
    ReloadError,
    ServedModel,
    bound_registry_calls,
)
from tradepipe.serving.schemas import ModelInfo, ReloadResponse, SignalsRequest, SignalsResponse, Weight
from tradepipe.serving.signals import BadRequest, check_bars
from tradepipe.serving.threads import match_torch_threads
from tradepipe.serving.workers import StepWorkers
from tradepipe.settings import API_TOKEN_ENV
from tradepipe.trading.step import Trader
from tradepipe.trading.store import Checkpointer

log = logging.getLogger(__name__)
DEFAULT_MODEL_URI = "models:/tradepipe-agent@champion"
_BEARER = HTTPBearer(auto_error=False)


async def _authorized(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
                      ) -> None:
    """The bearer token check (async: FastAPI would run a plain function in its thread pool, a hop per request)."""
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


# /v1/signals reads its body itself (after the token check), so FastAPI cannot infer the schema: document it
_SIGNALS_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/SignalsRequest"}}}}}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus SignalsRequest (and the models it refers to) under components/schemas."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        body = SignalsRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(body.pop("$defs", {}))
        schemas["SignalsRequest"] = body
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(model_uri: str = DEFAULT_MODEL_URI, *, tracking_uri: str, token: str, poll_seconds: float = 30.0,
               relay: APIRouter | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               load_attempts: int = LOAD_ATTEMPTS, paper: tuple[Path, Trader] | None = None,
               step_workers: int = 1) -> FastAPI:
    """The serving app for ``model_uri`` in the registry at ``tracking_uri`` (already resolved, see
    :func:`tradepipe.runtime.tracking.resolve_tracking_uri`); ``token`` guards /v1/signals and /v1/reload; the alias
    is re-read every ``poll_seconds`` (0 disables polling; ``POST /v1/reload`` or ``app.state.models.reload()``
    reload on demand). ``relay`` (see :mod:`tradepipe.orchestration.relay`) is mounted as is: it authenticates by
    HMAC signature. ``paper`` (a project root and its paper-trading :class:`~tradepipe.trading.step.Trader`) mounts
    the stateful account endpoints (:mod:`tradepipe.serving.accounts`), behind the same token; with ``step_workers``
    above 1 their steps run in that many worker processes (:mod:`tradepipe.serving.workers`).

    Hostile input: the token is checked before the body is read; bodies over ``max_body_bytes`` are refused (413,
    by Content-Length and while streaming); bars, symbols and error messages are bounded (see
    :mod:`tradepipe.serving.schemas`, :mod:`tradepipe.serving.limits`); /health shows a reason code, never the
    error itself (that goes to the log).

    Startup: the app listens at once; the model is verified and loaded in a background thread (``load_attempts``
    tries, 1, 2, 4 ... s apart, then the poll), with MLflow's HTTP retries and timeouts bounded
    (:func:`tradepipe.serving.models.bound_registry_calls`); meanwhile /health answers 503 ``loading``.
    """
    if not token:
        raise ValueError(f"an API token is required (set {API_TOKEN_ENV})")
    if not tracking_uri:
        raise ValueError("a tracking URI is required (resolve it with tradepipe.runtime.tracking.resolve_tracking_uri)")
    bound_registry_calls()
    metrics = ServingMetrics()
    holder = ModelHolder(model_uri, tracking_uri, on_reload=metrics.reloaded)
    workers = StepWorkers(paper[0], tracking_uri, step_workers) if paper is not None and step_workers > 1 else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        loader = threading.Thread(target=holder.keep_loaded, args=(poll_seconds, stop, load_attempts), daemon=True,
                                  name="model-load")
        loader.start()
        # the trade store's and paper broker's logs are checkpointed off the steps' thread (no pause in a step)
        checkpoints = Checkpointer(paper[1].engines()) if paper is not None else None
        if workers is not None:
            workers.start()
        yield
        stop.set()
        loader.join(timeout=5)
        if workers is not None:
            workers.stop()
        if checkpoints is not None:
            checkpoints.stop()

    app = FastAPI(title="tradepipe serving", lifespan=lifespan)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.state.models, app.state.metrics, app.state.token = holder, metrics, token
    app.state.step_workers = workers

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc.errors())}, status_code=422)

    @app.post("/v1/signals", dependencies=[Depends(_authorized)], openapi_extra=_SIGNALS_BODY)
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
            raise HTTPException(503, f"no model loaded from {model_uri}: {holder.last_reason or LOADING}")
        return await run_in_threadpool(_answer, served, body)

    def _answer(served: ServedModel, body: SignalsRequest) -> SignalsResponse:
        match_torch_threads()
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
    async def health() -> JSONResponse:
        """200 with the served version once a model is loaded, else 503: status ``loading`` (the first load is still
        being tried) or ``unavailable``, and the reason: ``loading``, a code and an exception class
        (``resolve_failed: MlflowException``) or ``unverified: <why>`` (an unsigned or altered version), never an
        error's message, which may hold credentials or SQL."""
        served = holder.current
        if served is None:
            status = LOADING if holder.loading else "unavailable"
            return JSONResponse({"status": status, "model_uri": model_uri, "reason": holder.last_reason or LOADING},
                                503)
        return JSONResponse({"status": "ok", "model_uri": model_uri, "model": _info(served.ref).model_dump(),
                             "symbols": served.policy.spec.symbols, "min_bars": served.min_bars,
                             "last_reload_error": holder.last_reason})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if relay is not None:
        app.include_router(relay)
    if paper is not None:
        app.include_router(accounts_router(paper[0], paper[1], metrics, _authorized, max_body_bytes, workers))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
