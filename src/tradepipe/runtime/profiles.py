"""Profiles: named sets of dotted-key overrides (profiles/<name>.yaml) applied to params.yaml.

Applying a profile rewrites params.yaml in place, keeping its comments, exactly as ``dvc exp run -S`` does;
``git checkout params.yaml`` returns to the default run.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tradepipe.config import ConfigError, Params, read_params_yaml, set_dotted
from tradepipe.runtime.params import resolve


def load_profile(root: Path, name: str) -> dict[str, Any]:
    """Read ``profiles/<name>.yaml`` (a flat mapping of dotted keys to values)."""
    path = root / "profiles" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise ConfigError(f"profile {name!r} not found at {path}; known profiles: {known}")
    overrides = read_params_yaml(path.read_text()) or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: expected a mapping of dotted keys to values")
    return overrides


def apply_profile(params_path: Path, overrides: dict[str, Any]) -> None:
    """Apply overrides to params.yaml in place (comments kept); refuse if the result is invalid."""
    rt = YAML()
    rt.preserve_quotes = True
    raw = rt.load(params_path.read_text())
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    text = io.StringIO()
    rt.dump(raw, text)
    resolve(Params.model_validate(read_params_yaml(text.getvalue())), params_path)
    params_path.write_text(text.getvalue())
