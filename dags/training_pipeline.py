"""The `training_pipeline` DAG: one task per pipeline stage, each running that stage with `dvc repro`.

DVC stays the source of truth: a task whose stage inputs did not change is skipped by DVC in seconds, and
`dvc.lock` records what ran. Every stage's MLflow run is tagged with this DAG run's id.

Runs weekly (Monday 03:00 UTC) or when an ingest records new data (asset `tradepipe-new-data`). Two stages
announce through asset events, only when something changed: ingest emits `tradepipe-new-data` when the bars'
content hash changed, register emits `tradepipe-champion` when it made a new agent version champion
(`deploy_champion` is scheduled on it).

The `profile` param (e.g. `smoke`) applies profiles/<name>.yaml for this run only: the setup task
apply_profile rewrites params.yaml and keeps the original in XCom, and the teardown task restore_params writes
it back however the stages ended, so later runs use the project's own params.yaml. Such a run's ingest does
not announce `tradepipe-new-data` (the profile picked that data, not the market).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import (
    DAG,
    Asset,
    AssetAlias,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    get_current_context,
    task,
)

from tradepipe import paths
from tradepipe.orchestration import events

STAGES = ("ingest", "validate", "features", "tune", "train", "rl_train", "backtest", "register")
PROJECT = Path(os.environ.get("TRADEPIPE_PROJECT", Path(__file__).resolve().parents[1]))
BIN = Path(sys.executable).parent

REPRO = "dvc repro {{ '--force --single-item ' if params.force else '' }}"
# Which stage announces what: (state file it changes, the event's extra when it changed, the asset).
ANNOUNCES = {"ingest": (paths.MANIFEST, events.new_data, events.NEW_DATA),
             "register": (paths.DECISION, events.champion_changed, events.CHAMPION)}


@task
def apply_profile() -> str | None:
    """Apply the run's ``profile`` param to params.yaml; return the original text (None without a profile)."""
    from tradepipe.profiles import apply_profile as apply
    from tradepipe.profiles import load_profile

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


class StageOperator(BashOperator):
    """`dvc repro <stage>`; ingest and register add an asset event (through an alias) when their output changed."""

    def __init__(self, *, stage: str, **kwargs: Any) -> None:
        announces = stage in ANNOUNCES
        super().__init__(task_id=stage, outlets=[AssetAlias(f"{ANNOUNCES[stage][2]}-events")] if announces else [],
                         **kwargs)
        self.stage = stage

    def execute(self, context: Any) -> Any:
        if self.stage not in ANNOUNCES:
            return super().execute(context)
        state, changed, asset = ANNOUNCES[self.stage]
        before = events.read_state(PROJECT / state)
        result = super().execute(context)
        extra = changed(before, events.read_state(PROJECT / state))
        if extra is not None and asset == events.NEW_DATA and context["params"]["profile"]:
            # the profile chose this data: announced, it would start a run on params.yaml's own data
            self.log.info("not announcing %s: ingested under profile %r", asset, context["params"]["profile"])
        elif extra is not None:
            context["outlet_events"][AssetAlias(f"{asset}-events")].add(Asset(asset), extra=extra)
            self.log.info("emitted asset %s %s", asset, extra)
        return result


with DAG(
    dag_id="training_pipeline",
    description="ingest → validate → features → tune → train → rl_train → backtest → register",
    # No start_date and run_immediately=0: the first run is next Monday's, none for the past week.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC", run_immediately=timedelta(0)),
        assets=[Asset(events.NEW_DATA)]),
    catchup=False,
    max_active_runs=1,
    tags=["tradepipe"],
    params={
        "profile": Param("", type="string", description="Apply profiles/<name>.yaml first (e.g. smoke)."),
        "force": Param(False, type="boolean", description="Rerun every stage even if its inputs are unchanged."),
    },
    doc_md=__doc__,
) as dag:
    profile = apply_profile()
    previous = profile
    for stage in STAGES:
        stage_task = StageOperator(
            stage=stage,
            bash_command=REPRO + stage,
            cwd=str(PROJECT),
            env={"PATH": f"{BIN}:{os.environ.get('PATH', '')}", "TRADEPIPE_RUN_ID": "{{ run_id }}"},
            append_env=True,
        )
        previous >> stage_task
        previous = stage_task
    previous >> restore_params(profile).as_teardown(setups=profile)
