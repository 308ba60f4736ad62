"""Where the DAGs and their tasks run: the project root and the interpreter's bin folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tradepipe.settings import settings

BIN = Path(sys.executable).parent  # this environment's dvc, airflow and python


def project_root(dag_file: str | Path) -> Path:
    """The project the DAG at ``dag_file`` works in: $TRADEPIPE_PROJECT, else the parent of the DAG's folder."""
    return settings().project or Path(dag_file).resolve().parents[1]


def bin_path() -> str:
    """$PATH with :data:`BIN` first, so that tasks' `dvc` and `python` are this environment's."""
    return f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
