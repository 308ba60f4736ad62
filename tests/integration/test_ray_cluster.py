"""rl_train's fits on a real two-node Ray cluster: tasks run on both nodes and the results equal the local run's.

The cluster is two ``ray start`` processes on loopback (a head and a second node, one CPU each, sharing a token
of their own), started from the project's virtualenv; the stage runs as ``python -m pipelines.rl_train`` in a
small project (four real stocks, a tiny predictor, SAC and PPO with two seeds: four Ray tasks), once with
``parallel.address`` pointing at the cluster and once serially, one after another in the stage's process. Each
``ray start`` is its own process group, ended by its id at teardown.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlflow import MlflowClient
from tests import ROOT
from tradepipe.config import FeatureParams
from tradepipe.core.scaler import Scaler
from tradepipe.features import build_features, feature_columns
from tradepipe.models.cnn_lstm import CNNLSTM
from tradepipe.models.panel import make_panel
from tradepipe.models.predictor import Predictor
from tradepipe.paths import AGENT, BARS, FEATURES, PREDICTIONS, PREDICTOR

pytestmark = pytest.mark.ray_cluster

BIN = Path(sys.executable).parent
FP = FeatureParams(indicators=["rsi_14", "sma_ratio_50"], ohlcv=False, return_horizons=[1, 5], ranks=[],
                   label_horizon=5)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the ``ray start`` process group this test started (its id), politely first."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.monotonic() + wait  # the group's other members (raylet, gcs) end after the leader
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A head and a second node on loopback, one CPU each; the head's address and the env a driver needs."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    temp = Path(f"/tmp/tp-ray-{secrets.token_hex(3)}")  # short: Ray's socket paths must stay under 107 bytes
    logs = tmp_path_factory.mktemp("ray-logs")
    port, *agent = _free_ports(9)
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block",
              "--object-store-memory", str(200 * 1024 * 1024)]
    head_cmd = [str(BIN / "ray"), "start", "--head", "--port", str(port), "--include-dashboard", "false",
                "--temp-dir", str(temp), "--dashboard-agent-listen-port", str(agent[0]),
                "--dashboard-agent-grpc-port", str(agent[1]), "--metrics-export-port", str(agent[2]),
                "--runtime-env-agent-port", str(agent[3]), *common]
    node_cmd = [str(BIN / "ray"), "start", "--address", f"127.0.0.1:{port}",
                "--dashboard-agent-listen-port", str(agent[4]), "--dashboard-agent-grpc-port", str(agent[5]),
                "--metrics-export-port", str(agent[6]), "--runtime-env-agent-port", str(agent[7]), *common]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, cmd in (("head", head_cmd), ("node", node_cmd)):
            with open(logs / f"{name}.log", "wb") as log:
                procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
            _wait_started(logs / f"{name}.log", procs[-1])
        _wait_nodes(f"127.0.0.1:{port}", env, 2)
        yield f"127.0.0.1:{port}", env
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _wait_started(log: Path, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, f"ray start exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"ray start did not come up in {timeout} s:\n{log.read_text()[-3000:]}")


def _wait_nodes(address: str, env: dict[str, str], n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = subprocess.run([str(BIN / "ray"), "status", "--address", address], env=env, capture_output=True,
                                text=True)
        if status.returncode == 0 and status.stdout.count("node_") >= n:
            return
        time.sleep(1.0)
    raise AssertionError(f"the cluster at {address} has not {n} nodes:\n{status.stdout}\n{status.stderr}")


def _params(root: Path, parallel: dict[str, Any]) -> None:
    """``root``'s params.yaml: the project's, tiny budgets, ``parallel`` as given."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"].update({"start": "2010-01-01", "end": "2013-12-31"})
    raw["split"] = {"train_end": "2011-12-31", "val_end": "2013-06-30", "embargo": 0}
    raw["features"] = FP.model_dump(mode="json")
    raw["train"]["walk_forward"] = {"start": None, "refit_years": 1}
    raw["rl_train"].update({"algos": ["sac", "ppo"], "seeds": 2, "total_timesteps": 200, "episode_length": 100})
    raw["rl_train"]["sac"].update({"batch_size": 32, "buffer_size": 1000, "n_envs": 2})
    raw["rl_train"]["ppo"].update({"n_steps": 32, "batch_size": 32, "n_envs": 2})
    raw["tracking"]["uri"] = "sqlite:///mlflow.db"
    raw["parallel"] = {**raw["parallel"], **parallel}
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _project(root: Path, bars: pd.DataFrame) -> Path:
    """A project holding what rl_train reads: bars, features, a tiny predictor and its forecasts."""
    root.mkdir(parents=True)
    features = build_features(bars, FP)
    panel = make_panel(features, feature_columns(FP))
    n = len(feature_columns(FP))
    predictor = Predictor(CNNLSTM(n, 4, 3, 4).eval(), {"seq_len": 5, "conv_filters": 4, "kernel_size": 3,
                                                       "lstm_hidden": 4}, FP,
                          Scaler.fit(panel.features, len(panel.timestamps) // 2), 0.02)
    for path, frame in ((BARS, bars), (FEATURES, features), (PREDICTIONS, predictor.predict_features(features))):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(root / path)
    predictor.save(root / PREDICTOR)
    return root


def _rl_train(root: Path, env: dict[str, str]) -> None:
    run = subprocess.run([sys.executable, "-m", "pipelines.rl_train"], cwd=root, capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def _figures(root: Path) -> dict[str, float]:
    """metrics/rl_train.json less the training speeds (wall-clock figures)."""
    metrics = json.loads((root / "metrics" / "rl_train.json").read_text())
    return {k: v for k, v in metrics.items() if not k.endswith("steps_per_s")}


def test_fits_run_on_both_nodes_and_equal_the_local_run(cluster: tuple[str, dict[str, str]], bars: pd.DataFrame,
                                                        tmp_path: Path) -> None:
    address, env = cluster
    remote = _project(tmp_path / "cluster", bars)
    local = shutil.copytree(remote, tmp_path / "local")  # the same inputs, byte for byte
    _params(remote, {"backend": "ray", "address": address})
    _params(local, {"backend": "serial"})
    _rl_train(remote, env)
    _rl_train(local, env)

    figures = _figures(remote)
    assert figures == _figures(local)
    assert {"seed_42.sac.val_sharpe", "seed_43.ppo.val_sharpe"} <= set(figures)
    assert np.isfinite(figures["ensemble.val_sharpe"])
    saved = sorted(p.relative_to(local / AGENT) for p in (local / AGENT).rglob("*") if p.is_file())
    assert {"sac.zip", "policy.json"} & {p.name for p in saved}
    for name in saved:  # the saved policy, byte for byte (tuning.json's trials included)
        assert (remote / AGENT / name).read_bytes() == (local / AGENT / name).read_bytes(), name

    client = MlflowClient(tracking_uri=f"sqlite:///{remote / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tradepipe").experiment_id])
    record = json.loads(Path(client.download_artifacts(run.info.run_id, "rl_train/ray_tasks.json",
                                                       str(tmp_path))).read_text())
    assert [t["task"] for t in record["tasks"]] == ["sac seed 42", "ppo seed 42", "sac seed 43", "ppo seed 43"]
    nodes = {t["node"] for t in record["tasks"]}
    assert len(nodes) == 2 and all(len(node) == 56 for node in nodes)  # both nodes' ids (hex, 28 bytes)
    assert run.data.tags["ray.nodes"] == ", ".join(sorted(nodes))
    local_client = MlflowClient(tracking_uri=f"sqlite:///{local / 'mlflow.db'}")
    (local_run,) = local_client.search_runs([local_client.get_experiment_by_name("tradepipe").experiment_id])
    assert local_run.data.tags["ray.nodes"] == "in-process"
