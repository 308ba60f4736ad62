"""The `paper_trading` DAG: every open paper account trades the new bars, one step per bar, in order.

Scheduled on the asset `tradepipe-new-data` (emitted by `ingest_data` when the bars changed), or by hand.
`tradepipe trade step` catches each account up bar by bar after downtime and is safe to rerun: a bar already
processed does nothing. A refused bar (missing symbol, bad price, stale data...) fails the task (exit 3) with
the event recorded in the trade store; a halted account is marked to market without trading.
"""

from __future__ import annotations

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset

from tradepipe.orchestration.events import NEW_DATA
from tradepipe.orchestration.project import DAG_DEFAULTS, bin_path, project_root

PROJECT = project_root(__file__)

with DAG(
    dag_id="paper_trading",
    description="the champion trades every paper account on the new bars",
    schedule=[Asset(NEW_DATA)],
    doc_md=__doc__,
    **DAG_DEFAULTS,
) as dag:
    BashOperator(
        task_id="step_accounts",
        bash_command="tradepipe trade step",
        cwd=str(PROJECT),
        env={"PATH": bin_path()},
        append_env=True,
    )
