"""The team tracking server for real: PostgreSQL metadata + S3 artifacts behind `mlflow/server.sh`.

A throwaway PostgreSQL server (Debian's `postgresql` package, installed by .ci/run) runs on loopback, the
shared moto S3 server stands in for MinIO, and `mlflow/server.sh` serves both. The stage tracking code and
the registry code then log a run with artifacts and register a model version through the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import psycopg2
import pytest

import mlflow
from mlflow import MlflowClient
from tests.fixtures.mlflow_server import running_mlflow_server
from tradepipe.registry.card import HEADLINE_METRICS, HEADLINE_STRATEGIES, model_card
from tradepipe.registry.gates import Decision
from tradepipe.registry.versions import CHALLENGER, CHAMPION, PREDICTOR_MODEL, register, set_aliases
from tradepipe.runtime.tracking import stage_run

BUCKET = "tradepipe-mlflow"
MLFLOW_USER, MLFLOW_PASSWORD = "tradepipe", "mlflow-test-password"
@pytest.fixture(scope="module")
def mlflow_server(postgres_url: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow/server.sh` on a free loopback port, artifacts proxied to s3://tradepipe-mlflow/artifacts."""
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    backend = postgres_url.replace("postgresql://", "postgresql+psycopg2://")  # SQLAlchemy's driver for psycopg2
    settings = {"MLFLOW_BACKEND_STORE_URI": backend, "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{BUCKET}/artifacts",
                "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
                # basic-auth: its users live in the same PostgreSQL database (MLFLOW_AUTH_DATABASE_URI unset)
                "MLFLOW_AUTH_ADMIN_USERNAME": MLFLOW_USER, "MLFLOW_AUTH_ADMIN_PASSWORD": MLFLOW_PASSWORD,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-secret-for-the-test"}
    with running_mlflow_server(settings, tmp_path_factory.mktemp("mlflow") / "server.log") as url:
        yield url


class WeightsModel(mlflow.pyfunc.PythonModel):
    """Equal weights over the symbols of the input: a stand-in policy small enough to log in a test."""

    def predict(self, context: object, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        symbols = sorted(model_input["symbol"].unique())
        return pd.DataFrame({"symbol": symbols, "weight": 1.0 / len(symbols)})


def test_run_artifacts_and_registry_land_in_postgres_and_s3(
        mlflow_server: str, postgres_url: str, s3_endpoint: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # overrides params' tracking.uri, as in the team setup
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", MLFLOW_USER)  # the server runs basic-auth
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_PASSWORD)
    monkeypatch.setenv("TRADEPIPE_SIGNING_KEY", "a-signing-key-for-the-server-test-0123456789")  # register() signs
    decision = {"promoted": True, "checks": ["pass: Sharpe 0.912 >= minimum 0.300"]}
    with stage_run("register", {"register": {"min_sharpe": 0.3}}, tmp_path, "sqlite:///mlflow.db") as run:
        mlflow.log_text(json.dumps(decision), "reports/register.json")
        info = mlflow.pyfunc.log_model(name="policy", python_model=WeightsModel(), pip_requirements=["mlflow"])
        run_id = run.info.run_id
    client = MlflowClient()
    # a model card as long as the default run's (every headline strategy, main and holdout, the ledger, lineage)
    figures = {f"{s}.{m}": 0.123456 for s in HEADLINE_STRATEGIES[:-1] + ("buy_and_hold_SP500",)
               for m in HEADLINE_METRICS}
    results = {**figures, **{f"holdout.{k}": v for k, v in figures.items()}, "holdout.bars": 252.0,
               "ledger.n_trials": 16.0, "ledger.sharpe_variance": 0.23, "ledger.sr0": 0.86}
    card = model_card(Decision(True).with_check(True, "Sharpe 0.912 >= minimum 0.300"), results,
                      {"git_commit": "f" * 40, "params_sha256": "e" * 64, "tradepipe.content_sha256": "d" * 64},
                      {"test span": "2015-01-05..2022-12-28 20 symbols 0123456789ab"})
    version = register(client, PREDICTOR_MODEL, info.model_uri, run_id, {"oos_sharpe": "0.912000"}, card)
    set_aliases(client, PREDICTOR_MODEL, version.version, promote=True)

    # through the MLflow API (server → PostgreSQL)
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.tags["tradepipe.runtime.stage"] == "register"
    assert got.data.params["register.min_sharpe"] == "0.3"
    assert client.get_experiment(got.info.experiment_id).name == "tradepipe"
    champion = client.get_model_version_by_alias(PREDICTOR_MODEL, CHAMPION)
    assert (champion.version, champion.run_id, champion.tags["oos_sharpe"]) == ("1", run_id, "0.912000")
    assert champion.description == card  # PostgreSQL's description column holds the whole card
    downloaded = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="reports/register.json",
                                                          dst_path=str(tmp_path / "dl")))
    assert json.loads(downloaded.read_text()) == decision

    # directly in PostgreSQL
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, name FROM runs WHERE run_uuid = %s", (run_id,))
        assert cur.fetchall() == [("FINISHED", "register")]
        cur.execute("SELECT version, run_id FROM model_versions WHERE name = %s", (PREDICTOR_MODEL,))
        assert cur.fetchall() == [(1, run_id)]
        cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s ORDER BY alias",
                    (PREDICTOR_MODEL,))
        assert cur.fetchall() == [(CHALLENGER, 1), (CHAMPION, 1)]
    conn.close()

    # directly in the S3 bucket: the run's artifact and the logged model's files
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="artifacts/")["Contents"]]
    report_key = f"artifacts/{got.info.experiment_id}/{run_id}/artifacts/reports/register.json"
    assert report_key in keys
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=report_key)["Body"].read()) == decision
    model_files = [k for k in keys if k.endswith("/MLmodel")]
    assert len(model_files) == 1 and "/models/" in model_files[0]
    assert b"python_function" in s3.get_object(Bucket=BUCKET, Key=model_files[0])["Body"].read()
