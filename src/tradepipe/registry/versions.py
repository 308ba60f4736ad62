"""Register model versions with lineage tags and a signed digest of their files, set aliases, read the champion."""

from __future__ import annotations

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlflow import MlflowClient
from tradepipe.registry.provenance import sign_version, signing_key

CHAMPION = "champion"
CHALLENGER = "challenger"
AGENT_MODEL = "tradepipe-agent"
PREDICTOR_MODEL = "tradepipe-predictor"
TRAIN_END_TAG = "train_end"  # split.train_end: the predictor's training window, the monitor's drift reference
FIT_END_TAG = "fit_data_end"  # the last bar the registered (live) policy was fit on: later bars are out of sample
FIT_START_TAG = "fit_data_start"  # the first bar of the live policy's fit window: with FIT_END_TAG, the drift reference


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version holding the champion alias, or None."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def register(client: MlflowClient, name: str, model_uri: str, run_id: str, tags: dict[str, str],
             description: str) -> ModelVersion:
    """Create a version of ``name`` from ``model_uri`` with lineage tags and a description, and sign it
    (:func:`tradepipe.registry.provenance.sign_version`: the digest of its files and its signature become tags)."""
    signing_key(client.tracking_uri, create=True)  # no key: refuse before anything is registered
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"tradepipe {name.split('-')[-1]}")
    # a tracking server takes a ``models:/<model_id>`` source only with that model_id named (a local store does not ask)
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    version = client.create_model_version(name, model_uri, run_id=run_id, tags=tags, description=description,
                                          model_id=model_id)
    sign_version(client, name, str(version.version), client.tracking_uri)
    return client.get_model_version(name, str(version.version))


def set_aliases(client: MlflowClient, name: str, version: str, promote: bool) -> None:
    """The new version becomes challenger; and champion when ``promote``."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    if promote:
        client.set_registered_model_alias(name, CHAMPION, version)
