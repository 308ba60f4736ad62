"""The `monitor_and_retrain` DAG (daily): the champion's live performance and feature drift, logged to MLflow
(experiment `tradepipe-monitoring`); triggers training_pipeline when a `monitor:` threshold of params.yaml is
crossed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, CronTriggerTimetable, task

from tradepipe.orchestration.project import DAG_DEFAULTS, project_root

PROJECT = project_root(__file__)


@task
def measure() -> dict[str, Any]:
    """Drift (PSI, KS per feature) and the champion's live Sharpe and drawdown over the recent bars."""
    from tradepipe.monitoring.job import monitor

    result = monitor(PROJECT)
    print(result)
    return result


@task.short_circuit
def needs_retraining(result: dict[str, Any]) -> bool:
    """True when any threshold was crossed (the reasons are in the log and on the MLflow run)."""
    print("retrain:", "; ".join(result["reasons"]) or "no threshold crossed")
    return bool(result["reasons"])


with DAG(
    dag_id="monitor_and_retrain",
    description="drift and live performance of the champion; retrain past the thresholds",
    schedule=CronTriggerTimetable("0 6 * * *", timezone="UTC", run_immediately=timedelta(0)),
    doc_md=__doc__,
    **DAG_DEFAULTS,
) as dag:
    retrain = TriggerDagRunOperator(task_id="retrain", trigger_dag_id="training_pipeline", conf={"force": True})
    needs_retraining(measure()) >> retrain
