"""The DAGs under real Airflow (`dag.test()`): training_pipeline (each task a DVC stage; the smoke profile as a DVC
experiment) and
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
dr = dag.test(run_conf=json.loads(sys.argv[1]))
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
    result = run([sys.executable, "-c", SCRIPT, json.dumps({"profile": "smoke"})], project, **env)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    tasks = dict(line.split()[1:] for line in out.splitlines() if line.startswith("TASK "))
    assert tasks == {s: "success" for s in ["experiment", *STAGE_NAMES]}
    assert "DAG_STATE success" in out
    run_id = next(line.split(maxsplit=1)[1] for line in out.splitlines() if line.startswith("RUN_ID"))
    # the smoke profile ran as one DVC experiment (each stage task's predecessor removed); the workspace untouched
    assert (project / "params.yaml").read_bytes() == params_before and not (project / DECISION).exists()
    names = run(["dvc", "exp", "ls", "--name-only"], project).stdout.split()
    assert len(names) == 1 and names[0].startswith("smoke-"), names
    assert run(["dvc", "exp", "apply", names[0]], project).returncode == 0
    # register announced its new champion (read from the experiment); ingest announced nothing
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
    # every stage ran once: each later task restored the stages before it from DVC's run cache (ingest, whose
    # archive persists, reruns in each task's copy)
    assert sorted(set(stages)) == sorted((stage, "FINISHED") for stage in STAGE_NAMES)
    assert [s for s, _ in stages].count("train") == 1
    assert (project / "dvc.lock").exists()
    (agent,) = mlc.search_model_versions(f"name = '{AGENT_MODEL}'")
    last_bar = pd.read_parquet(project / BARS)["timestamp"].max()
    # the monitor's boundaries: the live policy saw every bar, the predictor the smoke profile's training window
    assert (agent.tags[FIT_END_TAG], agent.tags[TRAIN_END_TAG]) == (last_bar.isoformat(), "2015-12-31")


def test_a_params_typo_fails_the_run_before_any_stage(project: Path, tmp_path: Path) -> None:
    """Without a profile the setup task checks params.yaml: a typo fails it, no stage runs, nothing is deleted."""
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("  max_epochs:", "  max_epoch:", 1))
    (project / "metrics").mkdir(exist_ok=True)
    kept = project / "metrics" / "tune.json"
    kept.write_text('{"best_val_loss": 1.0}')                # an earlier run's output
    lock = project / "dvc.lock"
    before = lock.read_bytes() if lock.exists() else None
    env = airflow_env(project, tmp_path / "airflow")
    result = run([sys.executable, "-c", SCRIPT, json.dumps({})], project, **env)
    tasks = dict(line.split()[1:] for line in result.stdout.splitlines() if line.startswith("TASK "))
    assert tasks == {"experiment": "failed", **{s: "upstream_failed" for s in STAGE_NAMES}}, result.stdout[-3000:]
    assert "max_epoch" in result.stdout + result.stderr and kept.read_text() == '{"best_val_loss": 1.0}'
    assert (lock.read_bytes() if lock.exists() else None) == before


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
    skipped = {t: "skipped" for t in ("pending", "smoke_test", "switch_serving", "switch_paper_accounts",
                                      "mark_deployed", "roll_back")}

    # (a) nothing pending: the polling run times out into a skip, a relay-triggered duplicate skips at once
    assert deploy_run(project, env, {}) == skipped
    assert deploy_run(project, env, {"version": first, "source": "mlflow-webhook"}) == skipped
    assert str(mlc.get_model_version_by_alias(AGENT_MODEL, CHAMPION).version) == first
    assert DEPLOYED_TAG not in mlc.get_model_version(AGENT_MODEL, second).tags

    # (b) a person moves the alias to v2 outside Airflow (no webhook): the polling run deploys it
    mlc.set_registered_model_alias(AGENT_MODEL, CHAMPION, second)
    assert deploy_run(project, env, {}) == {"pending": "success", "smoke_test": "success",
                                            "switch_serving": "success", "switch_paper_accounts": "success",
                                            "mark_deployed": "success", "roll_back": "skipped"}
    assert str(mlc.get_model_version_by_alias(AGENT_MODEL, CHAMPION).version) == second
    assert DEPLOYED_TAG in mlc.get_model_version(AGENT_MODEL, second).tags


PAPER_SCRIPT = """
import sys
sys.path.insert(0, "dags")
from paper_trading import dag
dr = dag.test()
print("DAG_STATE", dr.state)
"""


def test_paper_trading_dag_trades_new_bars_and_deploy_switches_the_account(
        project: Path, tmp_path: Path, bars: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, tiny_policy: Path,
        publish_champion: Callable[[str, Path], str]) -> None:
    """An account opened on v1 trades the bars ingest announced; deploy_champion of v2 switches it at its next
    bar (positions carried); the paper_trading DAG after new bars records v2's decision for the newest bar."""
    import sqlalchemy as sa
    import yaml

    monkeypatch.delenv("TRADEPIPE_SERVING_URL", raising=False)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["trading"]["max_stale_sessions"] = 100_000   # the bundled bars end in 2013: never stale here
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stamps = sorted(bars["timestamp"].unique())
    (project / BARS).parent.mkdir(parents=True, exist_ok=True)
    bars[bars["timestamp"] <= stamps[-3]].to_parquet(project / BARS)    # the last two bars arrive later
    mlc = client(project)
    mlc.create_experiment("serving-tests", artifact_location=(project / "mlartifacts").as_uri())
    first = publish_champion(mlc.tracking_uri, tiny_policy)
    mark_deployed(mlc, first)
    opened = run(["tradepipe", "trade", "open", "demo", "--cash", "100000", "--start",
                  str(stamps[-5].date())], project)
    assert opened.returncode == 0, opened.stderr[-2000:]
    env = airflow_env(project, tmp_path / "airflow")

    def paper_run() -> None:
        result = run([sys.executable, "-c", PAPER_SCRIPT], project, **env)
        assert result.returncode == 0 and "DAG_STATE success" in result.stdout, \
            result.stdout[-3000:] + result.stderr[-3000:]

    def decisions() -> list[tuple[pd.Timestamp, int]]:
        with sa.create_engine(f"sqlite:///{project / 'trades.db'}").connect() as conn:
            rows = conn.execute(sa.text("SELECT bar, model_version FROM decisions ORDER BY bar")).fetchall()
        return [(pd.Timestamp(bar).tz_localize("UTC"), int(v)) for bar, v in rows]

    paper_run()
    assert decisions() == [(stamps[-5], int(first)), (stamps[-4], int(first)), (stamps[-3], int(first))]
    paper_run()                                                          # nothing new: nothing happens
    assert len(decisions()) == 3
    second = publish_champion(mlc.tracking_uri, tiny_policy)
    assert deploy_run(project, env, {"version": second})["switch_paper_accounts"] == "success"
    bars.to_parquet(project / BARS)                                      # ingest brought two new bars
    paper_run()
    assert decisions()[3:] == [(stamps[-2], int(second)), (stamps[-1], int(second))]
    status = run(["tradepipe", "trade", "status", "demo", "--json"], project)
    book = json.loads(status.stdout)[0]
    assert book["model"] == f"tradepipe-agent v{second}" and book["last_bar"] == stamps[-1].isoformat()
    assert any(e["kind"] == "model_switch" for e in book["events"])

