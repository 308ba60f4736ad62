"""tradepipe's environment, read in one place: names, defaults, empty values and secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradepipe.settings import PROJECT_ENV, RUN_ID_ENV, Settings, env_var, settings

VARIABLES = {"run_id": "TRADEPIPE_RUN_ID", "git_commit": "TRADEPIPE_GIT_COMMIT", "project": "TRADEPIPE_PROJECT",
             "tracking_uri": "MLFLOW_TRACKING_URI", "api_token": "TRADEPIPE_API_TOKEN",
             "serving_url": "TRADEPIPE_SERVING_URL", "webhook_secret": "TRADEPIPE_WEBHOOK_SECRET",
             "airflow_url": "TRADEPIPE_AIRFLOW_URL", "airflow_user": "TRADEPIPE_AIRFLOW_USER",
             "airflow_password": "TRADEPIPE_AIRFLOW_PASSWORD", "metrics_textfile_dir": "TRADEPIPE_METRICS_TEXTFILE_DIR",
             "signing_key": "TRADEPIPE_SIGNING_KEY", "trading_db_url": "TRADEPIPE_TRADING_DB_URL"}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES.values():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_every_field_has_its_variable_name() -> None:
    assert {field: env_var(field) for field in Settings.model_fields} == VARIABLES
    assert (RUN_ID_ENV, PROJECT_ENV) == ("TRADEPIPE_RUN_ID", "TRADEPIPE_PROJECT")
    with pytest.raises(KeyError, match="no field 'runid'"):
        env_var("runid")


def test_defaults_then_each_variable_read(clean_env: pytest.MonkeyPatch) -> None:
    unset = settings()
    assert (unset.run_id, unset.project, unset.tracking_uri, unset.api_token) == (None, None, None, None)
    assert (unset.airflow_url, unset.airflow_user) == ("http://127.0.0.1:8080", "admin")
    clean_env.setenv("TRADEPIPE_RUN_ID", "run-7")
    clean_env.setenv("TRADEPIPE_PROJECT", "/srv/project")
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    clean_env.setenv("TRADEPIPE_AIRFLOW_USER", "ops")
    now = settings()  # a fresh read each call
    assert (now.run_id, now.project, now.tracking_uri, now.airflow_user) == ("run-7", Path("/srv/project"),
                                                                             "http://mlflow:5000", "ops")


def test_empty_counts_as_unset_and_the_prefixed_tracking_name_is_not_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TRADEPIPE_RUN_ID", "")
    clean_env.setenv("TRADEPIPE_AIRFLOW_URL", "")
    clean_env.setenv("TRADEPIPE_TRACKING_URI", "http://not-this:5000")  # MLflow's own name is the one
    env = settings()
    assert (env.run_id, env.airflow_url, env.tracking_uri) == (None, "http://127.0.0.1:8080", None)


def test_secrets_never_print(clean_env: pytest.MonkeyPatch) -> None:
    for name in ("TRADEPIPE_API_TOKEN", "TRADEPIPE_WEBHOOK_SECRET", "TRADEPIPE_AIRFLOW_PASSWORD"):
        clean_env.setenv(name, f"hunter2-{name}")
    env = settings()
    assert "hunter2" not in repr(env) and "hunter2" not in str(env) and "hunter2" not in env.model_dump_json()
    assert env.api_token is not None and env.api_token.get_secret_value() == "hunter2-TRADEPIPE_API_TOKEN"
    assert env.airflow_password is not None
    assert env.airflow_password.get_secret_value() == "hunter2-TRADEPIPE_AIRFLOW_PASSWORD"
