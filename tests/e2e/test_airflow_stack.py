"""A real Airflow 3 stack (api-server, scheduler, dag-processor, triggerer; LocalExecutor) on a project copy,
beside the real serving app (`tradepipe serve`): training_pipeline triggered through the REST API deploys its
champion through the asset it emits, and the serving app then answers with that version."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from tests.fixtures.project import BIN, client
from tradepipe.orchestration.airflow_api import AirflowAPI
from tradepipe.orchestration.deploy import DEPLOYED_TAG
from tradepipe.orchestration.stack import AirflowStack
from tradepipe.paths import BARS

TOKEN = "e2e-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

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


def health(url: str) -> httpx.Response | None:
    """GET /health of the serving app, None while it does not answer."""
    try:
        return httpx.get(f"{url}/health", timeout=10.0)
    except httpx.TransportError:
        return None


@pytest.fixture
def serving(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`tradepipe serve` on the project's registry, polling the alias hourly: only deploy_champion switches it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    url = f"http://127.0.0.1:{free_port()}"
    cmd = [str(Path(sys.executable).parent / "tradepipe"), "serve", "--port", url.rsplit(":", 1)[1],
           "--tracking-uri", f"sqlite:///{project / 'mlflow.db'}", "--poll-seconds", "3600"]
    env = {k: v for k, v in os.environ.items() if k != "TRADEPIPE_WEBHOOK_SECRET"}
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=project, env={**env, "TRADEPIPE_API_TOKEN": TOKEN}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: proc.poll() is not None or health(url), 120, f"the serving app (see {tmp_path}/serve.log)")
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture
def stack(project: Path, tmp_path: Path, serving: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AirflowStack]:
    # every Airflow process (so deploy_champion's switch_serving) gets these through AirflowStack.env()
    monkeypatch.setenv("TRADEPIPE_SERVING_URL", serving)
    monkeypatch.setenv("TRADEPIPE_API_TOKEN", TOKEN)
    with AirflowStack(project, tmp_path / "airflow", free_port(), "e2e-password") as running:
        yield running


def task_logs(stack: AirflowStack, dag_id: str) -> str:
    """The tail of every task log of ``dag_id``, for failure messages."""
    logs = sorted((stack.home / "logs").glob(f"dag_id={dag_id}/**/*.log"))
    return "\n".join(f"== {p.relative_to(stack.home)}\n{p.read_text()[-1500:]}" for p in logs)


def finished(api: AirflowAPI, dag_id: str, run_id: str, timeout_s: float, stack: AirflowStack) -> None:
    state = api.wait(dag_id, run_id, timeout_s)
    assert state == "success", f"{dag_id} {run_id}: {state}\n{task_logs(stack, dag_id)}"


def test_training_pipeline_deploys_its_champion_through_the_asset(stack: AirflowStack, project: Path,
                                                                  serving: str) -> None:
    api = stack.api
    # the project's own params are the smoke profile's (a profile param would run a DVC experiment beside the
    # workspace; deploy_champion and the monitor read the workspace's bars)
    assert subprocess.run([str(BIN / "tradepipe"), "profile", "smoke"], cwd=project).returncode == 0
    params = yaml.safe_load((project / "params.yaml").read_text())
    params.setdefault("trading", {})["max_stale_sessions"] = 100_000  # the smoke bars end in 2018: never stale
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    params_before = (project / "params.yaml").read_bytes()
    before = health(serving)
    assert before is not None and before.status_code == 503  # no champion yet: nothing served
    run_id = api.trigger("training_pipeline", {})
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
    # switch_serving reloaded the serving app (its own alias poll is hourly): it now answers with the champion
    served = health(serving)
    assert served is not None and served.status_code == 200, served and served.text
    assert served.json()["model"]["version"] == str(champion.version)
    bars = pd.read_parquet(project / BARS).groupby("symbol").tail(served.json()["min_bars"] + 20)
    payload = [{"timestamp": ts.isoformat(), "symbol": sym, "close": close}
               for ts, sym, close in bars[["timestamp", "symbol", "close"]].itertuples(index=False)]
    signals = httpx.post(f"{serving}/v1/signals", json={"bars": payload}, headers=AUTH, timeout=60.0)
    assert signals.status_code == 200, signals.text
    assert signals.json()["model"]["version"] == str(champion.version)
    assert sum(w["weight"] for w in signals.json()["weights"]) == pytest.approx(1.0, abs=1e-6)
    # new data comes only from ingest_data (parsed, daily, no run for the past): training_pipeline's ingest
    # announces nothing, so no follow-up run on params.yaml's own data
    new_data = api.request("GET", "/assets/events", params={"name_pattern": "tradepipe-new-data"})["asset_events"]
    assert new_data == []
    assert api.runs("ingest_data") == []
    assert [r["dag_run_id"] for r in api.runs("training_pipeline")] == [run_id]

    # a paper account on the deployed champion trades the newest bar through the paper_trading DAG
    opened = subprocess.run([str(BIN / "tradepipe"), "trade", "open", "demo", "--cash", "100000"], cwd=project,
                            capture_output=True, text=True)
    assert opened.returncode == 0, opened.stderr[-2000:]
    paper_id = api.trigger("paper_trading")
    finished(api, "paper_trading", paper_id, 300, stack)
    with sqlite3.connect(project / "trades.db") as conn:
        decided = conn.execute("SELECT bar, model_version FROM decisions WHERE account = 'demo'").fetchall()
    newest = pd.read_parquet(project / BARS)["timestamp"].max()
    assert [(pd.Timestamp(bar).tz_localize("UTC"), str(v)) for bar, v in decided] == [(newest, str(champion.version))]

    monitor_id = api.trigger("monitor_and_retrain")
    finished(api, "monitor_and_retrain", monitor_id, 300, stack)
    mlc = client(project)
    experiment = mlc.get_experiment_by_name("tradepipe-monitoring")
    (run,) = mlc.search_runs([experiment.experiment_id])
    assert run.data.tags["tradepipe.champion_version"] == str(champion.version)
    assert {"drifted_features", "retrain"} <= set(run.data.metrics)
    assert 0.0 <= run.data.metrics["champion_age_days"] < 1.0  # registered by this test's run: far from expiry
    # the live policy was fit on every bar there is: no out-of-sample bar yet, so performance is not judged
    assert run.data.metrics["live.oos_bars"] == 0.0 and "live.sharpe" not in run.data.metrics
    assert run.data.tags["tradepipe.live_window"].startswith("0 out-of-sample bars after the fit end")
    # the DAG runs left params.yaml as they found it
    assert (project / "params.yaml").read_bytes() == params_before
