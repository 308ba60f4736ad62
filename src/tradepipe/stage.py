"""The stage contract: params in, one MLflow run, metrics to metrics/<stage>.json, clear failures."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

import mlflow
from tradepipe.config import ConfigError, Params, load_params
from tradepipe.data.store import write_json
from tradepipe.tracking import stage_run

SHARED_KEYS = ("seed", "data")
console = Console(stderr=True, soft_wrap=True)


class StageError(Exception):
    """A failure the user can act on: the message says what, where and what to do."""


StageBody = Callable[[Params, Path], dict[str, float]]


def run_stage(name: str, body: StageBody, sections: tuple[str, ...], root: Path | None = None) -> None:
    """Run one stage: load params, open its MLflow run, call ``body``, record its metrics; exit 1 on failure."""
    root = (root or Path.cwd()).resolve()
    try:
        params = load_params(root / "params.yaml")
    except ConfigError as exc:
        console.print(f"[bold red]{name}: bad params[/]\n{escape(str(exc))}")
        sys.exit(2)
    raw: dict[str, Any] = yaml.safe_load((root / "params.yaml").read_text())
    logged = {key: raw[key] for key in (*SHARED_KEYS, *sections) if key in raw}
    try:
        with stage_run(name, logged, root, params.tracking.uri, params.tracking.experiment):
            metrics = body(params, root)
            mlflow.log_metrics(metrics)
            write_json(metrics, root / "metrics" / f"{name}.json")
    except StageError as exc:
        console.print(f"[bold red]{name} failed[/]\n{escape(str(exc))}")
        sys.exit(1)
    console.print(f"[green]{name} done[/] " + ", ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:6]))
