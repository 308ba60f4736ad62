"""MLflow tracking: one run per stage, tagged with the pipeline run id, git commit and input hashes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import yaml

import mlflow
from tradepipe.config import TrackingParams, load_params
from tradepipe.settings import settings

EXPERIMENT = "tradepipe"
DEFAULT_URI = TrackingParams().uri  # sqlite:///mlflow.db: relative, so a file in the project root
_SQLITE = "sqlite:///"


def resolve_tracking_uri(root: Path, explicit: str | None = None, *, configured: str | None = None) -> str:
    """The MLflow tracking (and registry) URI of the project at ``root``, for stages, CLI and serving alike.

    The first of: ``explicit`` (a command-line flag), $MLFLOW_TRACKING_URI, ``configured`` (params.yaml's
    ``tracking.uri`` already loaded by the caller; else read from ``root/params.yaml`` when there is one), the
    default ``sqlite:///mlflow.db``. A relative SQLite path is made absolute from ``root``, never from the
    working directory. ConfigError when root/params.yaml has to be read and is invalid.
    """
    uri = explicit or settings().tracking_uri or configured
    if not uri:
        params = root / "params.yaml"
        uri = load_params(params).tracking.uri if params.is_file() else DEFAULT_URI
    if uri.startswith(_SQLITE) and not uri[len(_SQLITE):].startswith("/"):
        uri = _SQLITE + str((root / uri[len(_SQLITE):]).resolve())
    return uri


def configure(configured_uri: str, experiment: str, root: Path) -> str:
    """Point MLflow at the tracking store and experiment (artifacts under ``root/mlartifacts``)."""
    uri = resolve_tracking_uri(root, configured=configured_uri)
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
    run_id = settings().run_id
    if run_id:
        return run_id
    proc = psutil.Process()
    for parent in proc.parents():
        cmdline = " ".join(parent.cmdline())
        if "dvc" in Path(parent.name()).name or " repro" in cmdline:
            return f"dvc-{parent.pid}-{int(parent.create_time())}"
    return f"local-{proc.pid}-{int(proc.create_time())}"


def git_commit(root: Path) -> str:
    """The current git commit; outside a git checkout (a container image) $TRADEPIPE_GIT_COMMIT, else 'unknown'."""
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else settings().git_commit or "unknown"


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
def stage_run(stage: str, params: Mapping[str, Any], root: Path, configured_uri: str,
              experiment: str = EXPERIMENT) -> Iterator[mlflow.ActiveRun]:
    """Open the stage's MLflow run with lineage tags and its params logged."""
    configure(configured_uri, experiment, root)
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
