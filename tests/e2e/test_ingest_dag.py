"""The `ingest_data` DAG under real Airflow (`dag.test()`, its own metadata DB): the only producer of
`tradepipe-new-data`, announcing it only when the bars' content hash changed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.project import airflow_env, run
from tradepipe.orchestration.events import CHAMPION, NEW_DATA, content_hash
from tradepipe.paths import BARS, MANIFEST
from tradepipe.runtime.profiles import apply_profile, load_profile

pytestmark = pytest.mark.e2e

# One ingest_data run, then every new-data event in Airflow's metadata DB, read through its ORM.
SCRIPT = """
import json, sys
sys.path.insert(0, "dags")
from sqlalchemy import select
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
from ingest_data import dag
dr = dag.test()
print("RUN", json.dumps({"run_id": dr.run_id, "state": str(dr.state),
                         "tasks": {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}}))
with create_session() as session:
    found = session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                            .where(AssetModel.name == sys.argv[1]).order_by(AssetEvent.id))
    print("EVENTS", json.dumps([[e.source_dag_id, e.source_task_id, e.source_run_id, e.extra] for e in found]))
"""

# What the dag-processor sees: every DAG file parsed, and each stage task's outlets.
PARSE_SCRIPT = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="dags")
print("PARSED", json.dumps({"errors": sorted(bag.import_errors), "dags": sorted(bag.dag_ids),
                            "outlets": {f"{d.dag_id}.{t.task_id}": [o.name for o in t.outlets]
                                        for d in bag.dags.values() for t in d.tasks if t.outlets}}))
"""


def output(result: Any, tag: str) -> Any:
    """The JSON a script printed after ``tag`` (the script must have succeeded)."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(next(line.split(maxsplit=1)[1] for line in result.stdout.splitlines()
                           if line.startswith(f"{tag} ")))


def ingest_run(project: Path, env: dict[str, str]) -> tuple[str, list[list[Any]]]:
    """One successful dag.test() run of ingest_data: its run id and every new-data event recorded so far."""
    result = run([sys.executable, "-c", SCRIPT, NEW_DATA], project, **env)
    dag_run = output(result, "RUN")
    assert (dag_run["state"], dag_run["tasks"]) == ("success", {"ingest": "success"}), result.stdout[-3000:]
    return dag_run["run_id"], output(result, "EVENTS")


def expected_extra(project: Path) -> dict[str, Any]:
    """The event's extra for the bars ingest just wrote (its manifest)."""
    manifest = json.loads((project / MANIFEST).read_text())
    return {"sha256": content_hash(manifest), "rows": manifest["rows"], "source": manifest["source"]}


def test_ingest_data_announces_new_data_only_when_the_bars_change(project: Path, tmp_path: Path) -> None:
    # the project's own params.yaml is the smoke one here: the source's bars up to 2018
    apply_profile(project / "params.yaml", load_profile(project, "smoke"))
    env = airflow_env(project, tmp_path / "airflow")

    # (a) the first ingest: one event, from ingest_data, carrying the manifest's content hash
    first_id, found = ingest_run(project, env)
    first = expected_extra(project)
    assert found == [["ingest_data", "ingest", first_id, first]]
    bars = (project / BARS).read_bytes()

    # (b) the next day, nothing new at the source: the stage reruns (forced) but announces nothing
    second_id, found = ingest_run(project, env)
    assert second_id != first_id
    assert found == [["ingest_data", "ingest", first_id, first]]
    assert (project / BARS).read_bytes() == bars  # byte for byte: training's later stages stay up to date

    # (c) a year more of bars at the source (here: a later data.end): announced with the new hash
    apply_profile(project / "params.yaml", {"data.end": "2019-12-31"})
    third_id, found = ingest_run(project, env)
    third = expected_extra(project)
    assert third["sha256"] != first["sha256"] and third["rows"] > first["rows"]
    assert found == [["ingest_data", "ingest", first_id, first], ["ingest_data", "ingest", third_id, third]]


def test_only_ingest_data_announces_new_data(project: Path, tmp_path: Path) -> None:
    env = {"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "TRADEPIPE_PROJECT": str(project)}
    parsed = output(run([sys.executable, "-c", PARSE_SCRIPT], project, **env), "PARSED")
    assert parsed["errors"] == []
    assert parsed["dags"] == ["deploy_champion", "ingest_data", "monitor_and_retrain", "paper_trading",
                              "training_pipeline"]
    # training_pipeline's ingest runs the stage but announces nothing; its register still announces champions
    assert parsed["outlets"] == {"ingest_data.ingest": [f"{NEW_DATA}-events"],
                                 "training_pipeline.register": [f"{CHAMPION}-events"]}
