"""The DAGs under real Airflow (`dag.test()`): training_pipeline (each task a DVC stage, smoke profile) and
deploy_champion (its alias sensor, on a real SQLite registry holding a tiny trained policy)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures.project import airflow_env, client, run
from tradepipe.orchestration.deploy import DEPLOYED_TAG, mark_deployed
from tradepipe.orchestration.events import CHAMPION as EVENT_CHAMPION
from tradepipe.paths import BARS, DECISION
from tradepipe.registry.versions import AGENT_MODEL, CHAMPION, FIT_END_TAG, TRAIN_END_TAG
from tradepipe.runtime.stages import STAGE_NAMES

pytestmark = pytest.mark.e2e
SCRIPT = """
import json, sys
sys.path.insert(0, "dags")
from sqlalchemy import select
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
from training_pipeline import dag
dr = dag.test(run_conf={"profile": "smoke"})
print("RUN_ID", dr.run_id)
print("DAG_STATE", dr.state)
for ti in dr.get_task_instances():
    print("TASK", ti.task_id, ti.state)
with create_session() as session:  # every asset event in Airflow's metadata DB
    found = session.execute(select(AssetModel.name, AssetEvent.source_task_id, AssetEvent.extra)
                            .join(AssetModel, AssetEvent.asset_id == AssetModel.id).order_by(AssetEvent.id))
    print("EVENTS", json.dumps([list(row) for row in found]))
"""


def test_training_pipeline_dag_runs_every_stage(project: Path, tmp_path: Path) -> None:
    params_before = (project / "params.yaml").read_bytes()
    env = airflow_env(project, tmp_path / "airflow")
    result = run([sys.executable, "-c", SCRIPT], project, **env)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    tasks = dict(line.split()[1:] for line in out.splitlines() if line.startswith("TASK "))
    assert tasks == {s: "success" for s in ["apply_profile", *STAGE_NAMES, "restore_params"]}
    assert "DAG_STATE success" in out
    run_id = next(line.split(maxsplit=1)[1] for line in out.splitlines() if line.startswith("RUN_ID"))
    # the smoke profile held for that run only
    assert (project / "params.yaml").read_bytes() == params_before
    # register announced its new champion; ingest announced nothing (new data comes only from ingest_data)
    decision = json.loads((project / DECISION).read_text())
    events = json.loads(next(line.split(maxsplit=1)[1] for line in out.splitlines() if line.startswith("EVENTS ")))
    assert decision["promoted"] is True
    assert events == [[EVENT_CHAMPION, "register", {"agent_version": decision["agent_version"],
                                                    "predictor_version": decision["predictor_version"]}]]

    mlc = client(project)
    exp = mlc.get_experiment_by_name("tradepipe")
    runs = mlc.search_runs([exp.experiment_id], f"tags.`tradepipe.pipeline_run_id` = '{run_id}'")
    stages = sorted((r.data.tags["tradepipe.runtime.stage"], r.info.status) for r in runs
                    if r.data.tags.get("mlflow.parentRunId") is None)
    assert stages == sorted((stage, "FINISHED") for stage in STAGE_NAMES)
    assert (project / "dvc.lock").exists()
    (agent,) = mlc.search_model_versions(f"name = '{AGENT_MODEL}'")
    last_bar = pd.read_parquet(project / BARS)["timestamp"].max()
    # the monitor's boundaries: the live policy saw every bar, the predictor the smoke profile's training window
    assert (agent.tags[FIT_END_TAG], agent.tags[TRAIN_END_TAG]) == (last_bar.isoformat(), "2015-12-31")

DEPLOY_SCRIPT = """
import json, sys
sys.path.insert(0, "dags")
from deploy_champion import dag
sensor = dag.get_task("pending")
sensor.poke_interval, sensor.timeout = 1, 4  # the 9-minute poll, shortened for the test
dr = dag.test(run_conf=json.loads(sys.argv[1]))
print("DAG_STATE", dr.state)
for ti in dr.get_task_instances():
    print("TASK", ti.task_id, ti.state)
"""


def deploy_run(project: Path, env: dict[str, str], conf: dict[str, str]) -> dict[str, str]:
    """One dag.test() run of deploy_champion with ``conf``; the task states (the run itself must succeed)."""
    result = run([sys.executable, "-c", DEPLOY_SCRIPT, json.dumps(conf)], project, **env)
    assert result.returncode == 0 and "DAG_STATE success" in result.stdout, \
        result.stdout[-3000:] + result.stderr[-3000:]
    return dict(line.split()[1:] for line in result.stdout.splitlines() if line.startswith("TASK "))


def test_deploy_champion_sensor_deploys_only_an_undeployed_champion(
        project: Path, tmp_path: Path, bars: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, tiny_policy: Path,
        publish_champion: Callable[[str, Path], str]) -> None:
    monkeypatch.delenv("TRADEPIPE_SERVING_URL", raising=False)
    (project / BARS).parent.mkdir(parents=True, exist_ok=True)
    bars.to_parquet(project / BARS)
    mlc = client(project)
    mlc.create_experiment("serving-tests", artifact_location=(project / "mlartifacts").as_uri())
    policy = tiny_policy
    first = publish_champion(mlc.tracking_uri, policy)
    mark_deployed(mlc, first)
    second = publish_champion(mlc.tracking_uri, policy)
    mlc.set_registered_model_alias(AGENT_MODEL, CHAMPION, first)  # v2 registered, the champion still deployed v1
    env = airflow_env(project, tmp_path / "airflow")
    skipped = {t: "skipped" for t in ("pending", "smoke_test", "switch_serving", "mark_deployed", "roll_back")}

    # (a) nothing pending: the polling run times out into a skip, a relay-triggered duplicate skips at once
    assert deploy_run(project, env, {}) == skipped
    assert deploy_run(project, env, {"version": first, "source": "mlflow-webhook"}) == skipped
    assert str(mlc.get_model_version_by_alias(AGENT_MODEL, CHAMPION).version) == first
    assert DEPLOYED_TAG not in mlc.get_model_version(AGENT_MODEL, second).tags

    # (b) a person moves the alias to v2 outside Airflow (no webhook): the polling run deploys it
    mlc.set_registered_model_alias(AGENT_MODEL, CHAMPION, second)
    assert deploy_run(project, env, {}) == {"pending": "success", "smoke_test": "success",
                                            "switch_serving": "success", "mark_deployed": "success",
                                            "roll_back": "skipped"}
    assert str(mlc.get_model_version_by_alias(AGENT_MODEL, CHAMPION).version) == second
    assert DEPLOYED_TAG in mlc.get_model_version(AGENT_MODEL, second).tags
