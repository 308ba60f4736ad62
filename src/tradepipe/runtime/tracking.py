"""MLflow tracking: one run per stage, tagged with the pipeline run id, git commit and input hashes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import yaml

import mlflow

EXPERIMENT = "tradepipe"
RUN_ID_ENV = "TRADEPIPE_RUN_ID"


def tracking_uri(configured: str, root: Path) -> str:
    """MLFLOW_TRACKING_URI if set, else ``configured`` with a relative SQLite path made absolute."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + str((root / uri[len(prefix):]).resolve())
    return uri


def configure(configured_uri: str, experiment: str, root: Path) -> str:
    """Point MLflow at the tracking store and experiment (artifacts under ``root/mlartifacts``)."""
    uri = tracking_uri(configured_uri, root)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None and uri.startswith("sqlite:"):
        mlflow.create_experiment(experiment, artifact_location=(root / "mlartifacts").resolve().as_uri())
    mlflow.set_experiment(experiment)
    return uri


def pipeline_run_id() -> str:
    """The id shared by all stages of one pipeline run.

    Airflow and ``tradepipe run`` set TRADEPIPE_RUN_ID. Under a bare ``dvc repro`` every stage is a child
    of the same dvc process, so its pid and start time identify the run.
    """
    if os.environ.get(RUN_ID_ENV):
        return os.environ[RUN_ID_ENV]
    proc = psutil.Process()
    for parent in proc.parents():
        cmdline = " ".join(parent.cmdline())
        if "dvc" in Path(parent.name()).name or " repro" in cmdline:
            return f"dvc-{parent.pid}-{int(parent.create_time())}"
    return f"local-{proc.pid}-{int(proc.create_time())}"


def git_commit(root: Path) -> str:
    """The current git commit; outside a git checkout (a container image) $TRADEPIPE_GIT_COMMIT, else 'unknown'."""
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else os.environ.get("TRADEPIPE_GIT_COMMIT") or "unknown"


def input_hashes(stage: str, root: Path) -> dict[str, str]:
    """Content hashes of a stage's dependencies as recorded in dvc.lock (empty before the first run)."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    deps = stages.get(stage, {}).get("deps", [])
    return {d["path"]: d.get("md5", d.get("hash", "")) for d in deps if "path" in d}


def output_hashes(root: Path) -> dict[str, str]:
    """Content hashes of every stage output recorded in dvc.lock so far (data, features, models...)."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {o["path"]: o.get("md5", o.get("hash", "")) for stage in stages.values() for o in stage.get("outs", [])
            if "path" in o}


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys (for mlflow.log_params)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


@contextmanager
def stage_run(stage: str, params: Mapping[str, Any], root: Path, tracking_uri_: str,
              experiment: str = EXPERIMENT) -> Iterator[mlflow.ActiveRun]:
    """Open the stage's MLflow run with lineage tags and its params logged."""
    configure(tracking_uri_, experiment, root)
    tags = {
        "tradepipe.runtime.stage": stage,
        "tradepipe.pipeline_run_id": pipeline_run_id(),
        "mlflow.source.git.commit": git_commit(root),
    }
    tags.update({f"tradepipe.dep.{path}": h for path, h in input_hashes(stage, root).items()})
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        flat = flatten(params)
        mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
        yield run
