"""The `training_pipeline` DAG: one task per pipeline stage, each running that stage with `dvc repro`.

DVC stays the source of truth: a task whose stage inputs did not change is skipped by DVC in seconds, and
`dvc.lock` records what ran. Every stage's MLflow run is tagged with this DAG run's id.

Runs weekly (Monday 03:00 UTC) or when the daily `ingest_data` DAG recorded new bars (asset
`tradepipe-new-data`). Its own ingest task runs the ingest stage (skipped by DVC when nothing changed) but
announces nothing: announced, that data would queue a follow-up run on the bars this run already trains on.
register emits `tradepipe-champion` when it made a new agent version champion (`deploy_champion` is scheduled
on it).

The `profile` param (e.g. `smoke`) applies profiles/<name>.yaml for this run only: the setup task
apply_profile rewrites params.yaml and keeps the original in XCom, and the teardown task restore_params writes
it back however the stages ended, so later runs use the project's own params.yaml.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    get_current_context,
    task,
)

from tradepipe.orchestration import events
from tradepipe.orchestration.project import DAG_DEFAULTS, project_root
from tradepipe.orchestration.stage_operator import StageOperator
from tradepipe.runtime.stages import STAGE_NAMES

PROJECT = project_root(__file__)

REPRO = "dvc repro {{ '--force --single-item ' if params.force else '' }}"


@task
def apply_profile() -> str | None:
    """Apply the run's ``profile`` param to params.yaml; return the original text (None without a profile)."""
    from tradepipe.runtime.profiles import apply_profile as apply
    from tradepipe.runtime.profiles import load_profile

    name = get_current_context()["params"]["profile"]
    if not name:
        return None
    original = (PROJECT / "params.yaml").read_text()
    apply(PROJECT / "params.yaml", load_profile(PROJECT, name))
    print(f"params.yaml holds profile {name!r} for this run")
    return original


@task
def restore_params(original: str | None) -> None:
    """Write back the params.yaml that apply_profile replaced (nothing to do without a profile)."""
    if original is not None:
        (PROJECT / "params.yaml").write_text(original)
        print("params.yaml restored")


with DAG(
    dag_id="training_pipeline",
    description="ingest → validate → features → tune → train → rl_train → backtest → register",
    # No start_date and run_immediately=0: the first run is next Monday's, none for the past week.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC", run_immediately=timedelta(0)),
        assets=[Asset(events.NEW_DATA)]),
    params={
        "profile": Param("", type="string", description="Apply profiles/<name>.yaml first (e.g. smoke)."),
        "force": Param(False, type="boolean", description="Rerun every stage even if its inputs are unchanged."),
    },
    doc_md=__doc__,
    **DAG_DEFAULTS,
) as dag:
    profile = apply_profile()
    previous = profile
    for stage in STAGE_NAMES:
        stage_task = StageOperator(stage=stage, command=REPRO + stage, project=PROJECT, announce=stage == "register")
        previous >> stage_task
        previous = stage_task
    previous >> restore_params(profile).as_teardown(setups=profile)
