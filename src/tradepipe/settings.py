"""Every environment variable tradepipe reads, in one pydantic-settings class (prefix ``TRADEPIPE_``).

Read with ``settings()``, which builds a fresh ``Settings`` from the environment at each call (tests and
long-running processes see changes). An empty variable counts as unset. Secrets are ``SecretStr``: they print
as ``**********``. ``env_var(field)`` is a field's variable name, for code that sets it for a child process
(``RUN_ID_ENV``, ``PROJECT_ENV``...). README's "Environment variables" table lists them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["API_TOKEN_ENV", "PROJECT_ENV", "RUN_ID_ENV", "SIGNING_KEY_ENV", "Settings", "env_var", "settings"]

PREFIX = "TRADEPIPE_"


class Settings(BaseSettings):
    """tradepipe's environment: ``TRADEPIPE_<FIELD>`` (case-insensitive); unset fields take the defaults."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True, env_ignore_empty=True)

    # pipeline runs
    run_id: str | None = None            # shared by every stage of one pipeline run (Airflow, `tradepipe run`)
    git_commit: str | None = None        # the commit of a checkout-less deployment (a container image)
    project: Path | None = None          # the project root the DAGs run in (default: the DAG folder's parent)
    tracking_uri: str | None = Field(None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI"))  # over params
    # serving
    api_token: SecretStr | None = None   # bearer token of `tradepipe serve`
    serving_url: str | None = None       # where deploy_champion's switch_serving POSTs /v1/reload
    webhook_secret: SecretStr | None = None  # HMAC secret of MLflow webhook deliveries to the relay
    # model provenance: HMAC key signing registered versions (unset: a key file beside a SQLite registry)
    signing_key: SecretStr | None = None
    # Airflow REST API (relay, monitor's retrain trigger, `make airflow`)
    airflow_url: str = "http://127.0.0.1:8080"
    airflow_user: str = "admin"
    airflow_password: SecretStr | None = None
    # paper trading: the trade store's SQLAlchemy URL, over params.yaml's trading.db_url
    trading_db_url: SecretStr | None = None
    # monitoring
    metrics_textfile_dir: Path | None = None  # node-exporter textfile directory for stage-run metrics (unset: off)


def settings() -> Settings:
    """The environment as it is now."""
    return Settings()


def env_var(field: str) -> str:
    """The environment variable that sets ``field`` of :class:`Settings`, e.g. ``run_id`` -> TRADEPIPE_RUN_ID."""
    info = Settings.model_fields.get(field)
    if info is None:
        raise KeyError(f"Settings has no field {field!r}; known: {', '.join(Settings.model_fields)}")
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return str(alias) if alias else f"{PREFIX}{field}".upper()


RUN_ID_ENV = env_var("run_id")        # set by `tradepipe run` and the stage tasks for `dvc repro`
PROJECT_ENV = env_var("project")      # set by the local Airflow stack for its DAG processor and tasks
API_TOKEN_ENV = env_var("api_token")  # set by the serving benchmark for the server it starts
SIGNING_KEY_ENV = env_var("signing_key")  # named in the errors of registry.provenance
