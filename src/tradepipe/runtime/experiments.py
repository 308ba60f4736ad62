"""Profiles and ad-hoc parameter variants as DVC experiments: ``dvc exp run --temp`` with ``-S`` overrides.

An experiment runs in a temporary copy of the project (``.dvc/tmp/exps``): the committed params.yaml, dvc.lock
and outputs of the workspace are never touched, so ``make run``, ``dvc repro`` and the scheduled DAG runs keep
running the project's own params. Its results are kept as a DVC experiment (``dvc exp show``, ``dvc plots
diff``; ``dvc exp apply NAME`` brings them into the workspace), its stages' outputs in the DVC cache and run
cache (a stage already run with the same inputs is restored, not rerun), and its MLflow runs in the project's
tracking store (MLFLOW_TRACKING_URI is set to it, since the temporary copy has no mlflow.db of its own).
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.error import YAMLError

from tradepipe.config import ConfigError, Params, invalid_params, read_params_yaml, set_dotted
from tradepipe.runtime.params import resolve
from tradepipe.runtime.profiles import load_profile
from tradepipe.runtime.tracking import EXPERIMENT, configure

_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``key=value`` command-line overrides, each value read as YAML (``3``, ``[AAPL, KO]``, ``null``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-S {item!r}: expected KEY=VALUE with a dotted params key, e.g. -S tune.num_samples=3")
        try:
            out[key.strip()] = read_params_yaml(text)  # YAML 1.2, as params.yaml is read: 16:00 stays a time
        except YAMLError as exc:
            raise ConfigError(f"-S {item!r}: the value is not valid YAML ({exc})") from exc
    return out


def variant(root: Path, profile: str | None, sets: list[str]) -> dict[str, Any]:
    """The overrides of a run: ``profiles/<profile>.yaml``'s, then the ``-S`` ones (which win)."""
    return {**(load_profile(root, profile) if profile else {}), **parse_sets(sets)}


def check_variant(params_path: Path, overrides: Mapping[str, Any]) -> Params:
    """params.yaml with ``overrides`` applied in memory, validated as every stage will validate it (unknown keys,
    types, dates, sources, rewards); ConfigError naming the key. The file itself is not written."""
    raw = read_params_yaml(params_path.read_text(encoding="utf-8")) or {}
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    source = f"{params_path} with {len(overrides)} override(s)"
    try:
        return resolve(Params.model_validate(raw), source)
    except ValidationError as exc:
        raise invalid_params(source, exc) from exc


def hydra_value(value: Any) -> str:
    """A value as DVC's ``-S`` override grammar (Hydra's) reads it back: strings quoted, lists and mappings
    spelled out, dates as ISO text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{key}:{hydra_value(v)}" for key, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    raise ConfigError(f"override value {value!r}: unsupported type {type(value).__name__}")


def set_args(overrides: Mapping[str, Any]) -> list[str]:
    """``-S key=value`` arguments of ``dvc exp run`` for ``overrides``."""
    return [arg for key, value in overrides.items() for arg in ("-S", f"{key}={hydra_value(value)}")]


def experiment_name(label: str | None) -> str:
    """A fresh experiment name (a valid git ref name): ``label`` (the profile, else ``variant``) and a random tag."""
    return f"{_NAME.sub('-', label or 'variant').strip('-.') or 'variant'}-{uuid.uuid4().hex[:8]}"


def exp_run_command(dvc: str, name: str, overrides: Mapping[str, Any], stage: str | None = None,
                    force: bool = False) -> list[str]:
    """``dvc exp run --temp`` of the pipeline (up to ``stage``) as experiment ``name`` with ``overrides``."""
    return [dvc, "exp", "run", "--temp", "-n", name, *set_args(overrides), *(["--force"] if force else []),
            *([stage] if stage else [])]


def tracking_env(root: Path, params: Params) -> dict[str, str]:
    """The environment an experiment's stages need to track into ``root``'s MLflow store (not the temporary
    copy's): MLFLOW_TRACKING_URI made absolute, and the experiment created with its artifacts under
    ``root/mlartifacts`` if it does not exist yet."""
    return {"MLFLOW_TRACKING_URI": configure(params.tracking.uri, params.tracking.experiment or EXPERIMENT, root)}


def experiment_metrics(root: Path, name: str, dvc: str = "dvc") -> dict[str, dict[str, Any]]:
    """The metrics files of experiment ``name`` (path -> figures) as ``dvc exp show`` reads them; empty when there
    is no such experiment."""
    out = subprocess.run([dvc, "exp", "show", "--json"], cwd=root, capture_output=True, text=True, check=True)
    for baseline in json.loads(out.stdout or "[]"):
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("name") == name:
                    metrics = (rev.get("data") or {}).get("metrics") or {}
                    return {path: entry.get("data") or {} for path, entry in metrics.items()}
    return {}
