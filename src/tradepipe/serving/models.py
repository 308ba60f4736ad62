"""The served model: resolve a registry URI, verify and load the version fully, swap one reference atomically.

Registry calls are bounded (:func:`bound_registry_calls`) and the first load runs in the background with bounded
retries (:meth:`ModelHolder.keep_loaded`), so the server listens at once and ``/health`` can say why it has no model.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import mlflow.pyfunc

from mlflow import MlflowClient
from tradepipe.agents.policy import TradingPolicy, TradingPolicyModel
from tradepipe.registry.provenance import ProvenanceError, verified_download
from tradepipe.serving.limits import reason, redact
from tradepipe.serving.signals import min_bars

log = logging.getLogger(__name__)
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
# MLflow's HTTP client, unless configured: 2 retries (1 s, 2 s apart) of 20 s each instead of 7 retries over ~4 min,
# so a reload against a dead registry fails within about a minute (switch_serving waits 120 s)
REGISTRY_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
LOAD_ATTEMPTS = 5  # tries of the first load, 1, 2, 4, 8 s apart; then the poll (if any) keeps trying
LOADING = "loading"


def bound_registry_calls() -> None:
    """Set MLflow's HTTP retries and timeout to :data:`REGISTRY_HTTP` where the environment does not set them."""
    for name, value in REGISTRY_HTTP.items():
        os.environ.setdefault(name, value)


class ReloadError(RuntimeError):
    """The registry could not be read or the new version could not be loaded; the old one keeps serving.

    The message is for the log (credentials in URLs redacted, but it may hold paths or SQL); ``reason`` is safe to
    show clients: a code and an exception class name."""

    def __init__(self, message: str, reason: str = "load_failed") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ModelRef:
    """Which registered version is served: name, version, the alias it was resolved from, its run, and when it was
    registered (Unix seconds; None where the registry does not say)."""

    name: str
    version: str
    alias: str | None
    run_id: str | None
    registered_at: float | None = None


@dataclass(frozen=True)
class ServedModel:
    """A fully loaded policy and what requests need to know about it."""

    ref: ModelRef
    policy: TradingPolicy
    min_bars: int


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: ``swapped`` to a new version, or left the same version ``unchanged``."""

    outcome: Literal["swapped", "unchanged"]
    previous: ModelRef | None
    current: ModelRef


def _load(client: MlflowClient, tracking_uri: str, ref: ModelRef, tags: Mapping[str, str]) -> ServedModel:
    """Download the version, check its signed digest, and only then load it (ReloadError ``unverified: ...``)."""
    try:
        with verified_download(client, ref.name, ref.version, tracking_uri, tags) as local:
            model = mlflow.pyfunc.load_model(str(local)).unwrap_python_model()
            if not isinstance(model, TradingPolicyModel):
                raise ReloadError(f"models:/{ref.name}/{ref.version} is a {type(model).__name__}, not a "
                                  "TradingPolicyModel", "not_a_trading_policy")
            policy = model.policy  # loaded into memory: the temporary copy can go
    except ProvenanceError as exc:
        raise ReloadError(redact(f"refusing models:/{ref.name}/{ref.version}: {exc}"), f"unverified: {exc.reason}"
                          ) from exc
    return ServedModel(ref, policy, min_bars(policy))


class ModelHolder:
    """Holds the served model; ``reload`` resolves the URI again and swaps in a new version once fully loaded.

    Requests read ``current`` once and use that object to the end, so a swap never disturbs them.
    ``on_reload(outcome, current)`` is called after every attempt, outcome ``swapped``, ``unchanged`` or ``failed``.
    """

    def __init__(self, model_uri: str, tracking_uri: str,
                 on_reload: Callable[[str, ServedModel | None], None] | None = None) -> None:
        match = _URI.match(model_uri)
        if match is None:
            raise ValueError(f"model URI {model_uri!r} must look like models:/NAME@ALIAS or models:/NAME/VERSION")
        self.model_uri, self.tracking_uri = model_uri, tracking_uri
        self._name, self._alias, self._version = match["name"], match["alias"], match["version"]
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._on_reload = on_reload
        self._lock = threading.Lock()
        self.current: ServedModel | None = None
        self.loading = True  # until the first load succeeded or its attempts ran out (see keep_loaded)
        self._settled = threading.Event()
        self.last_error: str | None = None  # details, for the log
        self.last_reason: str | None = None  # what clients may see (see ReloadError)

    def resolve(self) -> ModelRef:
        """The version the URI points to now."""
        return self._resolve()[0]

    def _resolve(self) -> tuple[ModelRef, dict[str, str]]:
        if self._alias is not None:
            mv = self._client.get_model_version_by_alias(self._name, self._alias)
        else:
            mv = self._client.get_model_version(self._name, str(self._version))
        registered = mv.creation_timestamp / 1000 if mv.creation_timestamp else None
        return ModelRef(self._name, str(mv.version), self._alias, mv.run_id, registered), dict(mv.tags)

    def reload(self) -> ReloadResult:
        """Resolve the URI; if it names another version, load it fully, then swap. Raises ReloadError."""
        try:
            result = self._reload()
        except ReloadError:
            self._notify("failed")
            raise
        self._notify(result.outcome)
        return result

    def _notify(self, outcome: str) -> None:
        if self._on_reload is not None:
            self._on_reload(outcome, self.current)

    def _reload(self) -> ReloadResult:
        with self._lock:
            previous = self.current
            step = "resolve_failed"
            try:
                ref, tags = self._resolve()
                if previous is not None and previous.ref == ref:
                    self.last_error = self.last_reason = None
                    return ReloadResult("unchanged", previous.ref, ref)
                step = "load_failed"
                loaded = _load(self._client, self.tracking_uri, ref, tags)
            except ReloadError as exc:
                self.last_error, self.last_reason = redact(str(exc)), exc.reason
                raise
            except Exception as exc:  # registry or artifact failure: keep serving what we have
                self.last_error = redact(f"cannot load {self.model_uri}: {type(exc).__name__}: {exc}")
                self.last_reason = reason(step, exc)
                raise ReloadError(self.last_error, self.last_reason) from exc
            self.current, self.last_error, self.last_reason = loaded, None, None
        log.info("serving %s version %s (run %s)", ref.name, ref.version, ref.run_id)
        return ReloadResult("swapped", previous.ref if previous else None, ref)

    def keep_loaded(self, every_s: float, stop: threading.Event, attempts: int = LOAD_ATTEMPTS,
                    backoff_s: float = 1.0) -> None:
        """Load the model, trying up to ``attempts`` times ``backoff_s``, 2 x, 4 x ... apart (``loading`` stays
        True meanwhile), then :meth:`poll` every ``every_s`` seconds (0: no polling). Run it in a thread."""
        for attempt in range(attempts):
            try:
                self.reload()
                break
            except ReloadError as exc:
                log.error("loading %s failed (attempt %d of %d): %s", self.model_uri, attempt + 1, attempts, exc)
                if attempt + 1 < attempts and stop.wait(backoff_s * 2 ** attempt):
                    break
        self.loading = False
        self._settled.set()
        if every_s > 0:
            self.poll(every_s, stop)

    def wait_loaded(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for :meth:`keep_loaded`'s first load to succeed or give up; True when a model
        is served."""
        self._settled.wait(timeout)
        return self.current is not None

    def poll(self, every_s: float, stop: threading.Event) -> None:
        """Reload every ``every_s`` seconds until ``stop`` is set; failures are logged, the old model stays."""
        while not stop.wait(every_s):
            try:
                self.reload()
            except ReloadError as exc:
                log.warning("reload failed, still serving %s: %s",
                            self.current.ref.version if self.current else "nothing", exc)
