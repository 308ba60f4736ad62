"""The team stack authenticates to MLflow and shares the signing key (issue 16): compose as it would run."""

from __future__ import annotations

import json

from tests import ROOT
from tests.manifests.test_manifests import _compose

CLIENTS = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "serving")


def test_mlflow_runs_basic_auth_and_every_client_logs_in_and_verifies_with_one_key() -> None:
    out = _compose("--env-file", str(ROOT / "docker/.env.example"), "config", "--format", "json")
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    example = dict(line.split("=", 1) for line in (ROOT / "docker/.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    server = services["mlflow"]["environment"]
    assert server["MLFLOW_AUTH_ADMIN_USERNAME"] == example["MLFLOW_TRACKING_USERNAME"]
    assert server["MLFLOW_AUTH_ADMIN_PASSWORD"] == example["MLFLOW_TRACKING_PASSWORD"]
    assert server["MLFLOW_FLASK_SERVER_SECRET_KEY"] == example["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    assert "--app-name basic-auth" in (ROOT / "mlflow/server.sh").read_text()
    for name in CLIENTS:
        env = services[name]["environment"]
        assert env["MLFLOW_TRACKING_USERNAME"] == example["MLFLOW_TRACKING_USERNAME"], name
        assert env["MLFLOW_TRACKING_PASSWORD"] == example["MLFLOW_TRACKING_PASSWORD"], name
        assert env["TRADEPIPE_SIGNING_KEY"] == example["TRADEPIPE_SIGNING_KEY"], name
        assert env["AWS_ACCESS_KEY_ID"] == example["MINIO_ROOT_USER"], name  # the S3 client env is still merged
    assert len(example["TRADEPIPE_SIGNING_KEY"]) >= 32
    raw = (ROOT / "docker/docker-compose.yml").read_text()
    assert example["MLFLOW_TRACKING_PASSWORD"] not in raw and example["TRADEPIPE_SIGNING_KEY"] not in raw
