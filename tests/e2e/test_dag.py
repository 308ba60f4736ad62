"""The training_pipeline DAG under real Airflow (`dag.test()`), each task a DVC stage, on the smoke profile."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import client, run

pytestmark = pytest.mark.e2e
SCRIPT = """
import sys
sys.path.insert(0, "dags")
from training_pipeline import dag
dr = dag.test(run_conf={"profile": "smoke"})
print("RUN_ID", dr.run_id)
print("DAG_STATE", dr.state)
for ti in dr.get_task_instances():
    print("TASK", ti.task_id, ti.state)
"""


def test_training_pipeline_dag_runs_every_stage(project: Path, tmp_path: Path) -> None:
    env = {"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"), "TRADEPIPE_PROJECT": str(project)}
    migrate = run(["airflow", "db", "migrate"], project, **env)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    result = run([sys.executable, "-c", SCRIPT], project, **env)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    tasks = dict(line.split()[1:] for line in out.splitlines() if line.startswith("TASK "))
    assert tasks == {s: "success" for s in
                     ["ingest", "validate", "features", "tune", "train", "rl_train", "backtest", "register"]}
    assert "DAG_STATE success" in out
    run_id = next(line.split(maxsplit=1)[1] for line in out.splitlines() if line.startswith("RUN_ID"))

    mlc = client(project)
    exp = mlc.get_experiment_by_name("tradepipe")
    runs = mlc.search_runs([exp.experiment_id], f"tags.`tradepipe.pipeline_run_id` = '{run_id}'")
    assert {r.data.tags["tradepipe.stage"] for r in runs} >= {"ingest", "train", "register"}
    assert (project / "dvc.lock").exists()
    assert "tradepipe-agent" in {m.name for m in mlc.search_registered_models()}
