"""Deploying the champion: smoke test in a fresh process, switch serving, record or roll back.

`python -m tradepipe.orchestration.deploy VERSION` is the smoke test: it downloads
``models:/tradepipe-agent/VERSION``, checks its signed digest (:mod:`tradepipe.registry.provenance`) before loading
anything of it, loads it in its own process, predicts target weights on the most recent bars of
data/raw/bars.parquet and prints them as JSON; it exits non-zero (with the reason, no traceback) when the version is
unsigned or altered, loading or predicting fails, or the weights are not a valid book.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd

import mlflow
from mlflow import MlflowClient
from tradepipe.core.io import UnreadableFileError, read_parquet
from tradepipe.paths import BARS
from tradepipe.registry.provenance import ProvenanceError, load_verified
from tradepipe.registry.versions import AGENT_MODEL, CHAMPION, champion
from tradepipe.runtime.tracking import resolve_tracking_uri
from tradepipe.serving.limits import redact
from tradepipe.settings import env_var, settings

log = logging.getLogger(__name__)
HISTORY_BARS = 300  # bars per symbol handed to the policy: indicators (SMA 200) and the predictor's window
DEPLOYED_TAG = "tradepipe.deployed_at"
SERVING_URL_ENV = env_var("serving_url")


class DeployError(RuntimeError):
    """The champion failed its smoke test or serving refused to switch to it."""


def registry(root: Path) -> MlflowClient:
    """An MLflow client on the project's tracking store ($MLFLOW_TRACKING_URI, else params.yaml's)."""
    return MlflowClient(tracking_uri=resolve_tracking_uri(root))


def smoke_test(client: MlflowClient, version: str, bars: pd.DataFrame) -> pd.DataFrame:
    """Verify and load agent version ``version`` (ProvenanceError when it is unsigned or altered: nothing of it is
    loaded) and predict on the last bars of ``bars``; raise DeployError unless the book is valid."""
    recent = bars.groupby("symbol").tail(HISTORY_BARS).reset_index(drop=True)
    model = load_verified(client, AGENT_MODEL, version, client.tracking_uri)
    weights = model.predict(recent.assign(timestamp=recent["timestamp"].astype(str)))
    if not isinstance(weights, pd.DataFrame):
        raise DeployError(f"models:/{AGENT_MODEL}/{version} returned a {type(weights).__name__}, not a book")
    values = weights["weight"].astype(float)
    if not values.map(math.isfinite).all() or abs(values.sum() - 1.0) > 1e-6 or (values < -1e-9).any():
        raise DeployError(f"models:/{AGENT_MODEL}/{version} returned an invalid book:\n{weights.to_string()}")
    return weights


def switch_serving(version: str, url: str | None, token: str | None) -> dict[str, object] | None:
    """Ask the serving app at ``url`` to reload the champion; None (logged) when no serving URL is configured."""
    if not url:
        log.info("%s is not set: no serving app to switch to %s v%s", SERVING_URL_ENV, AGENT_MODEL, version)
        return None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(f"{url.rstrip('/')}/v1/reload", headers=headers, timeout=120.0)
    if response.status_code >= 300:
        raise DeployError(f"POST {url}/v1/reload answered {response.status_code}: {response.text[:500]}")
    result: dict[str, object] = response.json()
    log.info("serving reloaded: %s", result)
    return result


def mark_deployed(client: MlflowClient, version: str) -> None:
    """Tag ``version`` as deployed now: the version a later failed deploy rolls back to."""
    client.set_model_version_tag(AGENT_MODEL, version, DEPLOYED_TAG, datetime.now(UTC).isoformat())


def pending_champion(client: MlflowClient) -> str | None:
    """The version ``tradepipe-agent@champion`` points at when it is not yet tagged deployed, else None."""
    current = champion(client, AGENT_MODEL)
    return None if current is None or DEPLOYED_TAG in current.tags else str(current.version)


def last_deployed(client: MlflowClient, other_than: str) -> str | None:
    """The most recently deployed agent version other than ``other_than``, or None."""
    deployed = [(v.tags[DEPLOYED_TAG], v.version) for v in client.search_model_versions(f"name = '{AGENT_MODEL}'")
                if DEPLOYED_TAG in v.tags and v.version != other_than]
    return max(deployed)[1] if deployed else None


def roll_back(client: MlflowClient, failed: str) -> str | None:
    """Point the champion alias back at the last deployed version (removed when there is none); return it."""
    previous = last_deployed(client, failed)
    if previous is None:
        client.delete_registered_model_alias(AGENT_MODEL, CHAMPION)
        log.warning("%s v%s failed and no earlier version was deployed: champion alias removed", AGENT_MODEL, failed)
    else:
        client.set_registered_model_alias(AGENT_MODEL, CHAMPION, previous)
        log.warning("%s v%s failed: champion alias rolled back to v%s", AGENT_MODEL, failed, previous)
    return previous


def switch_from_env(version: str) -> dict[str, object] | None:
    """:func:`switch_serving` with the URL and token from TRADEPIPE_SERVING_URL and TRADEPIPE_API_TOKEN."""
    env = settings()
    return switch_serving(version, env.serving_url, env.api_token.get_secret_value() if env.api_token else None)


def main(argv: list[str]) -> int:
    """Smoke-test agent version ``argv[0]`` of the project in the working directory."""
    root = Path.cwd()
    client = registry(root)
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        weights = smoke_test(client, argv[0], read_parquet(root / BARS))
    except (ProvenanceError, UnreadableFileError, DeployError) as exc:
        print(f"smoke test of {AGENT_MODEL} v{argv[0]} failed: {redact(str(exc))}", file=sys.stderr)
        return 1
    print(json.dumps(dict(zip(weights["symbol"], weights["weight"].round(6), strict=True))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
