"""The `training_pipeline` DAG: one task per pipeline stage, each running that stage with `dvc repro`.

DVC stays the source of truth: a task whose stage inputs did not change is skipped by DVC in seconds, and
`dvc.lock` records what ran. Every stage's MLflow run is tagged with this DAG run's id.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param

STAGES = ("ingest", "validate", "features", "tune", "train", "rl_train", "backtest", "register")
PROJECT = Path(os.environ.get("TRADEPIPE_PROJECT", Path(__file__).resolve().parents[1]))
BIN = Path(sys.executable).parent

PROFILE = "{% if params.profile %}tradepipe profile {{ params.profile }} --root . && {% endif %}"
REPRO = "dvc repro {{ '--force --single-item ' if params.force else '' }}"

with DAG(
    dag_id="training_pipeline",
    description="ingest → validate → features → tune → train → rl_train → backtest → register",
    schedule="@weekly",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["tradepipe"],
    params={
        "profile": Param("", type="string", description="Apply profiles/<name>.yaml first (e.g. smoke)."),
        "force": Param(False, type="boolean", description="Rerun every stage even if its inputs are unchanged."),
    },
    doc_md=__doc__,
) as dag:
    previous = None
    for stage in STAGES:
        task = BashOperator(
            task_id=stage,
            bash_command=(PROFILE if stage == STAGES[0] else "") + REPRO + stage,
            cwd=str(PROJECT),
            env={"PATH": f"{BIN}:{os.environ.get('PATH', '')}", "TRADEPIPE_RUN_ID": "{{ run_id }}"},
            append_env=True,
        )
        if previous is not None:
            previous >> task
        previous = task
