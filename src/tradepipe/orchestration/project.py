"""Where the DAGs and their tasks run: the project root and the interpreter's bin folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from tradepipe.settings import settings

BIN = Path(sys.executable).parent  # this environment's dvc, airflow and python
# What every tradepipe DAG shares: no backfill of missed intervals, and one run at a time, since the stages of
# two runs would share (and DVC lock) the one project checkout.
DAG_DEFAULTS: dict[str, Any] = {"catchup": False, "max_active_runs": 1, "tags": ["tradepipe"]}


def project_root(dag_file: str | Path) -> Path:
    """The project the DAG at ``dag_file`` works in: $TRADEPIPE_PROJECT, else the parent of the DAG's folder."""
    return settings().project or Path(dag_file).resolve().parents[1]


def bin_path() -> str:
    """$PATH with :data:`BIN` first, so that tasks' `dvc` and `python` are this environment's."""
    return f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
