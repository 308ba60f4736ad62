"""A real Airflow 3 stack (api-server, scheduler, dag-processor, triggerer; LocalExecutor) on a project copy:
training_pipeline triggered through the REST API deploys its champion through the asset it emits."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import client
from tradepipe.orchestration.airflow_api import AirflowAPI
from tradepipe.orchestration.deploy import DEPLOYED_TAG
from tradepipe.orchestration.stack import AirflowStack

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(probe: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(5.0)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture
def stack(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AirflowStack]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TRADEPIPE_SERVING_URL", raising=False)
    with AirflowStack(project, tmp_path / "airflow", free_port(), "e2e-password") as running:
        yield running


def task_logs(stack: AirflowStack, dag_id: str) -> str:
    """The tail of every task log of ``dag_id``, for failure messages."""
    logs = sorted((stack.home / "logs").glob(f"dag_id={dag_id}/**/*.log"))
    return "\n".join(f"== {p.relative_to(stack.home)}\n{p.read_text()[-1500:]}" for p in logs)


def finished(api: AirflowAPI, dag_id: str, run_id: str, timeout_s: float, stack: AirflowStack) -> None:
    state = api.wait(dag_id, run_id, timeout_s)
    assert state == "success", f"{dag_id} {run_id}: {state}\n{task_logs(stack, dag_id)}"


def test_training_pipeline_deploys_its_champion_through_the_asset(stack: AirflowStack, project: Path) -> None:
    api = stack.api
    run_id = api.trigger("training_pipeline", {"profile": "smoke"})
    finished(api, "training_pipeline", run_id, 900, stack)
    decision = json.loads((project / "reports/register.json").read_text())
    assert decision["promoted"] is True  # the smoke profile's gate lets the first version through

    deploys = wait_for(lambda: [r for r in api.runs("deploy_champion") if r["run_type"] == "asset_triggered"],
                       180, "an asset-triggered deploy_champion run")
    deploy_id = deploys[0]["dag_run_id"]
    finished(api, "deploy_champion", deploy_id, 300, stack)
    events = api.request("GET", f"/dags/deploy_champion/dagRuns/{deploy_id}/upstreamAssetEvents")["asset_events"]
    assert [(e["uri"], e["source_dag_id"], e["source_run_id"], e["extra"]["agent_version"]) for e in events] == [
        ("tradepipe-champion", "training_pipeline", run_id, decision["agent_version"])]

    champion = client(project).get_model_version_by_alias("tradepipe-agent", "champion")
    assert str(champion.version) == str(decision["agent_version"])
    assert DEPLOYED_TAG in champion.tags
    new_data = api.request("GET", "/assets/events", params={"name_pattern": "tradepipe-new-data"})["asset_events"]
    assert [(e["source_dag_id"], e["source_run_id"]) for e in new_data] == [("training_pipeline", run_id)]

    monitor_id = api.trigger("monitor_and_retrain")
    finished(api, "monitor_and_retrain", monitor_id, 300, stack)
    mlc = client(project)
    experiment = mlc.get_experiment_by_name("tradepipe-monitoring")
    (run,) = mlc.search_runs([experiment.experiment_id])
    assert run.data.tags["tradepipe.champion_version"] == str(champion.version)
    assert {"live.sharpe", "live.max_drawdown", "drifted_features", "retrain"} <= set(run.data.metrics)
    assert run.data.metrics["live.bars"] == 62.0  # the 63-bar live window, first bar only decides
