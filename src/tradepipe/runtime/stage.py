"""The stage contract: params in, one MLflow run, metrics to metrics/<stage>.json, clear failures."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from rich.console import Console
from rich.markup import escape

import mlflow
from tradepipe.config import ConfigError, Params, read_params_yaml
from tradepipe.core.io import write_json
from tradepipe.runtime.params import stage_params
from tradepipe.runtime.stage_metrics import stage_run_metrics
from tradepipe.runtime.stages import stage
from tradepipe.runtime.tracking import stage_run

__all__ = ["StageBody", "StageError", "UndeclaredParams", "run_stage"]

console = Console(stderr=True, soft_wrap=True)
READ_TAG = "tradepipe.params_read"


class StageError(Exception):
    """A failure the user can act on: the message says what, where and what to do."""


class UndeclaredParams(RuntimeError):
    """A stage read a params.yaml section its registry entry (and so DVC) does not track."""


StageBody = Callable[[Params, Path], dict[str, float]]


class _Recorder:
    """``Params`` as a stage body sees them: every top-level section read is noted (by its params.yaml key)."""

    def __init__(self, params: Params) -> None:
        self._params, self.read = params, set[str]()

    def __getattr__(self, name: str) -> Any:
        field = Params.model_fields.get(name)
        if field is not None:
            self.read.add(field.alias or name)
        return getattr(self._params, name)


def run_stage(name: str, body: StageBody, root: Path | None = None) -> None:
    """Run one stage: load params, open its MLflow run, call ``body``, record its metrics; exit 1 on failure.

    Logs the params sections the stage registry declares for ``name``; a body that reads any other section
    is a contract breach (DVC would not rerun the stage when it changes) and fails the stage.
    """
    with stage_run_metrics(name):  # counted in the stage-run textfile when TRADEPIPE_METRICS_TEXTFILE_DIR is set
        _run(name, body, (root or Path.cwd()).resolve())


def _run(name: str, body: StageBody, root: Path) -> None:
    spec = stage(name)
    try:
        params = stage_params(root / "params.yaml")
    except ConfigError as exc:
        console.print(f"[bold red]{name}: bad params[/]\n{escape(str(exc))}")
        sys.exit(2)
    raw: dict[str, Any] = read_params_yaml((root / "params.yaml").read_text())  # as load_params and DVC read it
    logged = {key: raw[key] for key in spec.params if key in raw}
    recorder = _Recorder(params)
    try:
        with stage_run(name, logged, root, params.tracking.uri, params.tracking.experiment):
            metrics = body(cast(Params, recorder), root)
            undeclared = recorder.read - set(spec.params)
            if undeclared:
                raise UndeclaredParams(f"stage {name} read params.yaml {sorted(undeclared)}, which neither the "
                                       "stage registry (tradepipe.runtime.stages) nor dvc.yaml declare for it")
            mlflow.set_tag(READ_TAG, ",".join(sorted(recorder.read)))
            mlflow.log_metrics(metrics)
            write_json(metrics, root / spec.metrics)
    except StageError as exc:
        console.print(f"[bold red]{name} failed[/]\n{escape(str(exc))}")
        sys.exit(1)
    console.print(f"[green]{name} done[/] " + ", ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:6]))
