"""Model provenance (issue 16, finding 1): no code runs from an unverified model.

A registry writer without the signing key registers a PythonModel whose pickle runs a shell command and aliases it
champion: serving, the deploy smoke test and the monitor must refuse it before unpickling anything (the command never
runs) and /health must say why without secrets. Versions whose stored files were altered after signing, or that were
signed with another key, are refused the same way; a version registered by the project's code is served.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import mlflow
from mlflow import MlflowClient
from tradepipe.config import Params
from tradepipe.monitoring.job import _live_performance
from tradepipe.orchestration.deploy import smoke_test
from tradepipe.registry.provenance import DIGEST_TAG, SIGNATURE_TAG, ProvenanceError, provenance_tags, signing_key
from tradepipe.registry.versions import AGENT_MODEL, CHAMPION
from tradepipe.serving import create_app
from tradepipe.serving.models import ModelHolder, ReloadError

TOKEN = "s3cret"


class CommandOnUnpickle(mlflow.pyfunc.PythonModel):
    """Unpickling this runs ``touch <marker>`` (``__reduce__`` names ``os.system``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _registry(tmp_path: Path) -> tuple[str, MlflowClient, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("attack", artifact_location=(tmp_path / "mlartifacts").as_uri())
    return uri, client, experiment


def _register_evil(tmp_path: Path, marker: Path, tags: dict[str, str] | None = None) -> tuple[str, MlflowClient]:
    """What an attacker with write access to the registry (not the key) can do: log, register, alias champion."""
    uri, client, experiment = _registry(tmp_path)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            info = mlflow.pyfunc.log_model(name="policy", python_model=CommandOnUnpickle(marker),
                                           pip_requirements=["mlflow"])
        client.create_registered_model(AGENT_MODEL)  # the store resolves models:/m-... with the global URI
        version = client.create_model_version(AGENT_MODEL, info.model_uri, run_id=run.info.run_id, tags=tags or {})
    finally:
        mlflow.set_tracking_uri(previous)
    client.set_registered_model_alias(AGENT_MODEL, CHAMPION, version.version)
    assert not marker.exists()  # logging it ran nothing
    signing_key(uri, create=True)  # the project's key (its register stage has signed with this registry before)
    return uri, client


def _health(app: Any) -> dict[str, Any]:
    with TestClient(app) as c:
        deadline = time.monotonic() + 30
        while (health := c.get("/health")).json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert health.status_code == 503
        return dict(health.json())


def test_unsigned_pickle_champion_runs_nothing_anywhere(tmp_path: Path, bars: pd.DataFrame, params: Params) -> None:
    marker = tmp_path / "pwned"
    uri, client = _register_evil(tmp_path, marker)

    with pytest.raises(ReloadError) as refused:
        ModelHolder(f"models:/{AGENT_MODEL}@{CHAMPION}", uri).reload()
    assert refused.value.reason == "unverified: unsigned"
    assert "unsigned" in str(refused.value)
    health = _health(create_app(tracking_uri=uri, token=TOKEN, poll_seconds=0, load_attempts=1))
    assert health == {"status": "unavailable", "model_uri": f"models:/{AGENT_MODEL}@{CHAMPION}",
                      "reason": "unverified: unsigned"}
    with pytest.raises(ProvenanceError, match="unsigned"):
        smoke_test(client, "1", bars)  # deploy_champion's smoke test
    with pytest.raises(ProvenanceError, match="unsigned"):
        _live_performance("1", dict(client.get_model_version(AGENT_MODEL, "1").tags), uri, tmp_path, params)
    assert not marker.exists(), "the model's pickle ran its command"


def test_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    forged = provenance_tags(b"an attacker's own key, 32 bytes or more", "0" * 64)
    uri, _ = _register_evil(tmp_path, marker, forged)
    with pytest.raises(ReloadError) as refused:
        ModelHolder(f"models:/{AGENT_MODEL}@{CHAMPION}", uri).reload()
    assert refused.value.reason == "unverified: bad_signature"
    assert not marker.exists()


def _stored_files(client: MlflowClient, version: str) -> Path:
    return Path(url2pathname(urlparse(client.get_model_version_download_uri(AGENT_MODEL, version)).path))


def test_signed_version_is_served_and_altered_files_are_refused(
        tmp_path: Path, tiny_policy: Path, publish_champion: Any) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = publish_champion(uri, tiny_policy)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    tags = client.get_model_version(AGENT_MODEL, version).tags
    assert len(tags[DIGEST_TAG]) == 64 and len(tags[SIGNATURE_TAG]) == 64
    holder = ModelHolder(f"models:/{AGENT_MODEL}@{CHAMPION}", uri)
    assert holder.reload().outcome == "swapped"  # the project's own registration verifies

    # someone with write access to the artifact store swaps the models-from-code file for a command
    marker = tmp_path / "pwned"
    code = next(_stored_files(client, version).glob("*.py"))
    code.write_text(f"import os\nos.system('touch {marker}')\n")
    holder = ModelHolder(f"models:/{AGENT_MODEL}@{CHAMPION}", uri)
    with pytest.raises(ReloadError) as refused:
        holder.reload()
    assert refused.value.reason == "unverified: digest_mismatch"
    assert not marker.exists()
    health = _health(create_app(tracking_uri=uri, token=TOKEN, poll_seconds=0, load_attempts=1))
    assert health["reason"] == "unverified: digest_mismatch"
    assert str(tmp_path) not in str(health)


def test_registered_pyfunc_holds_no_pickle(tmp_path: Path, tiny_policy: Path, publish_champion: Any) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = publish_champion(uri, tiny_policy)
    files = _stored_files(MlflowClient(tracking_uri=uri, registry_uri=uri), version)
    names = sorted(p.name for p in files.rglob("*") if p.is_file())
    assert "python_model.pkl" not in names and "_policy_pyfunc.py" in names, names
    assert "model_code_path" in (files / "MLmodel").read_text()
