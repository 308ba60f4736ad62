"""The `deploy_champion` DAG: put the new `tradepipe-agent@champion` into service, or roll the alias back.

Runs on the asset `tradepipe-champion` (emitted by training_pipeline's register task when it promoted a new
version), when the MLflow webhook relay triggers it through the REST API (conf `version`) after a person moved
the alias, and every 10 minutes for promotions that neither announces (no webhook configured).

pending (a sensor: the champion alias points at a version not yet tagged `tradepipe.deployed_at`) → smoke_test (a
fresh process loads the version and predicts on recent bars) → switch_serving (`POST
$TRADEPIPE_SERVING_URL/v1/reload`, skipped when unset) → switch_paper_accounts (every paper account on the agent
switches to the new version at its next bar, recorded as an event) → mark_deployed. A run triggered by the asset or
the relay checks once; the scheduled (and a plain manual) run polls the alias every minute for up to 9 minutes.
With nothing pending the run skips every task, so a champion announced twice (asset and webhook) deploys once. If
the smoke test or the switch fails, roll_back points the alias at the last deployed version and the run fails.
"""

from __future__ import annotations

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    PokeReturnValue,
    TriggerRule,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowSkipException

from tradepipe.orchestration.events import CHAMPION
from tradepipe.orchestration.project import DAG_DEFAULTS, bin_path, project_root

PROJECT = project_root(__file__)
POLL_EVERY = "*/10 * * * *"
POKE_S, POLL_TIMEOUT_S = 60, 540  # the polling run gives up (skipped) before the next one starts


@task.sensor(mode="reschedule", poke_interval=POKE_S, timeout=POLL_TIMEOUT_S, soft_fail=True)
def pending() -> PokeReturnValue:
    """Done, with the version, once the champion alias points at a version not yet deployed.

    A run triggered by the champion asset or by the webhook relay (conf ``version``) checks once and skips when
    that champion is already deployed; any other run keeps polling until the sensor's timeout skips it.
    """
    from tradepipe.orchestration.deploy import pending_champion, registry
    from tradepipe.registry.versions import AGENT_MODEL

    context = get_current_context()
    events = [e.extra for evs in context["triggering_asset_events"].values() for e in evs]
    conf = context["dag_run"].conf or {}
    version = pending_champion(registry(PROJECT))
    print(f"{AGENT_MODEL}@champion pending deployment: {version or 'none'}; conf={conf} asset events={events}")
    if version is None and (events or "version" in conf):
        raise AirflowSkipException(f"{AGENT_MODEL}@champion is already deployed (or unset): nothing to do")
    return PokeReturnValue(is_done=version is not None, xcom_value=version)


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

    version = get_current_context()["ti"].xcom_pull(task_ids="pending")
    previous = deploy.roll_back(deploy.registry(PROJECT), version)
    raise deploy.DeployError(f"v{version} was not deployed; champion is now {previous or 'unset'}")


with DAG(
    dag_id="deploy_champion",
    description="smoke-test the new champion, switch serving to it, roll back on failure",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(POLL_EVERY, timezone="UTC"),
                                 assets=[Asset(CHAMPION)]),
    doc_md=__doc__,
    **DAG_DEFAULTS,
) as dag:
    version = pending()
    smoke_test = BashOperator(
        task_id="smoke_test",
        bash_command="python -m tradepipe.orchestration.deploy {{ ti.xcom_pull(task_ids='pending') }}",
        cwd=str(PROJECT),
        env={"PATH": bin_path()},
        append_env=True,
    )
    switch = switch_serving(version)
    switch_accounts = BashOperator(  # paper accounts switch at their next bar, positions carried
        task_id="switch_paper_accounts",
        bash_command="tradepipe trade switch {{ ti.xcom_pull(task_ids='pending') }}",
        cwd=str(PROJECT),
        env={"PATH": bin_path()},
        append_env=True,
    )
    version >> smoke_test >> switch >> switch_accounts >> mark_deployed(version)
    [smoke_test, switch] >> roll_back()
