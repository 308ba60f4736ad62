"""The `ingest_data` DAG (daily, 01:00 UTC): ingest the configured source; announce new bars.

One task reruns the ingest stage (`dvc repro --force --single-item ingest`: DVC tracks only ingest's code and
params, not what the source holds, so it would otherwise skip the day's new bars) and emits the asset
`tradepipe-new-data`, with the bars' content hash in its extra, only when that hash changed. training_pipeline
is scheduled on that asset: new-data events come only from here, so a training run starts on genuinely new
bars. A day without new bars leaves the bars, and so `dvc.lock` and every later stage, as they were.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable

from tradepipe.orchestration.project import DAG_DEFAULTS, project_root
from tradepipe.orchestration.stage_operator import StageOperator

PROJECT = project_root(__file__)

with DAG(
    dag_id="ingest_data",
    description="ingest the source daily; announce tradepipe-new-data when the bars changed",
    # No start_date and run_immediately=0: the first run is the next 01:00 UTC, none for the past.
    schedule=CronTriggerTimetable("0 1 * * *", timezone="UTC", run_immediately=timedelta(0)),
    doc_md=__doc__,
    **DAG_DEFAULTS,
) as dag:
    StageOperator(stage="ingest", command="dvc repro --force --single-item ingest", project=PROJECT, announce=True)
