"""Every environment variable tradepipe reads, in one pydantic-settings class (prefix ``TRADEPIPE_``).

Read with ``settings()``, which builds a fresh ``Settings`` from the environment at each call (tests and
long-running processes see changes). Secrets are ``SecretStr``: they print as ``**********``. README's
"Environment variables" table lists them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "settings"]


class Settings(BaseSettings):
    """tradepipe's environment: ``TRADEPIPE_<FIELD>`` (case-insensitive); unset fields take the defaults."""

    model_config = SettingsConfigDict(env_prefix="TRADEPIPE_", extra="ignore", frozen=True)

    # pipeline runs
    run_id: str | None = None            # shared by every stage of one pipeline run (Airflow, `tradepipe run`)
    git_commit: str | None = None        # the commit of a checkout-less deployment (a container image)
    project: Path | None = None          # the project root the DAGs run in (default: the DAG folder's parent)
    tracking_uri: str | None = Field(None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI"))  # over params
    # serving
    api_token: SecretStr | None = None   # bearer token of `tradepipe serve`
    serving_url: str | None = None       # where deploy_champion's switch_serving POSTs /v1/reload
    webhook_secret: SecretStr | None = None  # HMAC secret of MLflow webhook deliveries to the relay
    # Airflow REST API (relay, monitor's retrain trigger, `make airflow`)
    airflow_url: str = "http://127.0.0.1:8080"
    airflow_user: str = "admin"
    airflow_password: SecretStr | None = None


def settings() -> Settings:
    """The environment as it is now."""
    return Settings()
