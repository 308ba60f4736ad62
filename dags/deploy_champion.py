"""The `deploy_champion` DAG: put the new `tradepipe-agent@champion` into service, or roll the alias back.

Scheduled on the asset `tradepipe-champion` (emitted by training_pipeline's register task when it promoted a
new version) and triggered through the REST API by the MLflow webhook relay when a person moves the alias.

resolve → smoke_test (a fresh process loads the version and predicts on recent bars) → switch_serving
(`POST $TRADEPIPE_SERVING_URL/v1/reload`, skipped when unset) → mark_deployed. If the smoke test or the switch
fails, roll_back points the alias at the last deployed version and the run fails.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset, TriggerRule, get_current_context, task

from tradepipe.orchestration.events import CHAMPION

PROJECT = Path(os.environ.get("TRADEPIPE_PROJECT", Path(__file__).resolve().parents[1]))
BIN = Path(sys.executable).parent


@task
def resolve() -> str:
    """The agent version the champion alias points at now."""
    from tradepipe.orchestration.deploy import DeployError, registry
    from tradepipe.registry.versions import AGENT_MODEL, champion

    context = get_current_context()
    current = champion(registry(PROJECT), AGENT_MODEL)
    if current is None:
        raise DeployError(f"{AGENT_MODEL} has no champion alias: nothing to deploy")
    events = [e.extra for evs in context["triggering_asset_events"].values() for e in evs]
    print(f"deploying {AGENT_MODEL} v{current.version}; conf={context['params']} asset events={events}")
    return current.version


@task
def switch_serving(version: str) -> None:
    """Tell the serving app to reload the champion (skipped, logged, when TRADEPIPE_SERVING_URL is unset)."""
    from tradepipe.orchestration.deploy import switch_from_env

    switch_from_env(version)


@task
def mark_deployed(version: str) -> None:
    """Record the deployment on the model version (the rollback target of a later failure)."""
    from tradepipe.orchestration import deploy

    deploy.mark_deployed(deploy.registry(PROJECT), version)


@task(trigger_rule=TriggerRule.ONE_FAILED)
def roll_back() -> None:
    """Point the champion alias back at the last deployed version, then fail the run."""
    from tradepipe.orchestration import deploy

    version = get_current_context()["ti"].xcom_pull(task_ids="resolve")
    previous = deploy.roll_back(deploy.registry(PROJECT), version)
    raise deploy.DeployError(f"v{version} was not deployed; champion is now {previous or 'unset'}")


with DAG(
    dag_id="deploy_champion",
    description="smoke-test the new champion, switch serving to it, roll back on failure",
    schedule=[Asset(CHAMPION)],
    catchup=False,
    max_active_runs=1,
    tags=["tradepipe"],
    doc_md=__doc__,
) as dag:
    version = resolve()
    smoke_test = BashOperator(
        task_id="smoke_test",
        bash_command="python -m tradepipe.orchestration.deploy {{ ti.xcom_pull(task_ids='resolve') }}",
        cwd=str(PROJECT),
        env={"PATH": f"{BIN}:{os.environ.get('PATH', '')}"},
        append_env=True,
    )
    switch = switch_serving(version)
    version >> smoke_test >> switch >> mark_deployed(version)
    [smoke_test, switch] >> roll_back()
