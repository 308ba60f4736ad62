"""The `training_pipeline` DAG: one task per pipeline stage, each running that stage with `dvc repro`.

DVC stays the source of truth: a task whose stage inputs did not change is skipped by DVC in seconds, and
`dvc.lock` records what ran. Every stage's MLflow run is tagged with this DAG run's id.

Runs weekly (Monday 03:00 UTC) or when the daily `ingest_data` DAG recorded new bars (asset
`tradepipe-new-data`). Its own ingest task runs the ingest stage (skipped by DVC when nothing changed) but
announces nothing: announced, that data would queue a follow-up run on the bars this run already trains on.
register emits `tradepipe-champion` when it made a new agent version champion (`deploy_champion` is scheduled
on it).

The `profile` param (e.g. `smoke`) makes the run a DVC experiment instead: the setup task `experiment` checks
profiles/<name>.yaml's overrides as the stages will and names the experiment `<profile>-<run>`; each stage
task then runs `dvc exp run --temp -S ...` up to its stage in a temporary copy of the project (the stages
before it restored from DVC's run cache, not rerun), keeping only the last stage's experiment. params.yaml,
dvc.lock and the workspace's outputs are never touched, so nothing has to be written back afterwards.
register's decision then comes from the experiment's metrics. Without a profile, the same setup task checks
params.yaml as every stage will, so a typo fails the run before any stage (DVC deletes a stage's outputs before
running it). `force` reruns unchanged stages of a run
without a profile (an experiment reruns a stage whenever no earlier run had the same inputs).
"""

from __future__ import annotations

import shlex
from datetime import timedelta
from typing import Any

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
EXP = "ti.xcom_pull(task_ids='experiment')"


@task
def experiment() -> dict[str, Any] | None:
    """With the run's ``profile`` param: its overrides checked, the experiment's name, -S arguments and tracking
    URI for the stage tasks (the MLflow experiment created under the project); None without a profile, once
    params.yaml passed the stages' own check (a typo fails here, before `dvc repro` deletes any output)."""
    from tradepipe.runtime.experiments import check_variant, set_args, tracking_env, variant
    from tradepipe.runtime.params import stage_params

    context = get_current_context()
    name = context["params"]["profile"]
    if not name:
        stage_params(PROJECT / "params.yaml")
        return None
    overrides = variant(PROJECT, name, [])
    merged = check_variant(PROJECT / "params.yaml", overrides)
    tag = "".join(c if c.isalnum() else "-" for c in str(context["run_id"]))[-40:].strip("-")
    exp = {"name": f"{name}-{tag}", "set": " ".join(map(shlex.quote, set_args(overrides))),
           "tracking_uri": tracking_env(PROJECT, merged)["MLFLOW_TRACKING_URI"]}
    print(f"experiment {exp['name']}: {len(overrides)} override(s) of profiles/{name}.yaml; params.yaml untouched")
    return exp


def command(stage: str, previous: str | None, last: bool) -> str:
    """The stage task's bash: `dvc repro` of the stage, or in an experiment run `dvc exp run --temp` up to it
    (the previous stage's experiment removed: this one holds everything up to here)."""
    name = "{{ exp.name }}" if last else f"{{{{ exp.name }}}}-{stage}"
    remove = f" && dvc exp remove {{{{ exp.name }}}}-{previous}" if previous else ""
    return ("{% set exp = " + EXP + " %}{% if exp %}"
            f"MLFLOW_TRACKING_URI={{{{ exp.tracking_uri | quote }}}} dvc exp run --temp -n {name} {{{{ exp.set }}}} "
            f"{stage}{remove}"
            "{% else %}dvc repro {{ '--force --single-item ' if params.force else '' }}" + stage + "{% endif %}")


with DAG(
    dag_id="training_pipeline",
    description="ingest → validate → features → tune → train → rl_train → backtest → register",
    # No start_date and run_immediately=0: the first run is next Monday's, none for the past week.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC", run_immediately=timedelta(0)),
        assets=[Asset(events.NEW_DATA)]),
    params={
        "profile": Param("", type="string",
                         description="Run as a DVC experiment with profiles/<name>.yaml's overrides (e.g. smoke)."),
        "force": Param(False, type="boolean", description="Rerun every stage even if its inputs are unchanged."),
    },
    user_defined_filters={"quote": shlex.quote},
    doc_md=__doc__,
    **DAG_DEFAULTS,
) as dag:
    previous_task: Any = experiment()
    previous: str | None = None
    for i, stage in enumerate(STAGE_NAMES):
        stage_task = StageOperator(stage=stage, command=command(stage, previous, i == len(STAGE_NAMES) - 1),
                                   project=PROJECT, announce=stage == "register", experiment="experiment")
        previous_task >> stage_task
        previous_task, previous = stage_task, stage
