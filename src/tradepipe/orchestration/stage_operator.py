"""The Airflow operator shared by the DAGs that run pipeline stages: `dvc repro` of one stage in the project,
optionally announcing through an asset event what the stage changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Asset, AssetAlias

from tradepipe import paths
from tradepipe.orchestration import events
from tradepipe.orchestration.project import BIN, bin_path
from tradepipe.settings import RUN_ID_ENV

# Which stage can announce what: (state file it changes, the event's extra when it changed, the asset).
ANNOUNCES = {"ingest": (paths.MANIFEST, events.new_data, events.NEW_DATA),
             "register": (paths.DECISION, events.champion_changed, events.CHAMPION)}


def alias(asset: str) -> AssetAlias:
    """The alias a stage task declares as its outlet: it emits the asset's event only when the stage changed it."""
    return AssetAlias(f"{asset}-events")


class StageOperator(BashOperator):
    """``command`` (a `dvc repro` of ``stage``) in ``project``, tagging MLflow runs with the DAG run's id.

    With ``announce``, the task records an event of the stage's asset (ANNOUNCES) when the stage changed its
    state file: new data when ingest changed the bars' content hash, a champion when register made a new one.
    ``experiment``: the id of a task whose XCom names the DVC experiment the command ran the stage in (None: the
    workspace); register's decision is then read from that experiment's metrics.
    """

    def __init__(self, *, stage: str, command: str, project: Path, announce: bool = False,
                 experiment: str | None = None, **kwargs: Any) -> None:
        if announce and stage not in ANNOUNCES:
            raise ValueError(f"stage {stage!r} has nothing to announce; only {sorted(ANNOUNCES)} do")
        super().__init__(task_id=stage, bash_command=command, cwd=str(project),
                         env={"PATH": bin_path(), RUN_ID_ENV: "{{ run_id }}"},
                         append_env=True, outlets=[alias(ANNOUNCES[stage][2])] if announce else [], **kwargs)
        self.stage, self.project, self.announce, self.experiment = stage, project, announce, experiment

    def execute(self, context: Any) -> Any:
        if not self.announce:
            return super().execute(context)
        state, changed, asset = ANNOUNCES[self.stage]
        before = events.read_state(self.project / state)
        result = super().execute(context)
        exp = context["ti"].xcom_pull(task_ids=self.experiment) if self.experiment else None
        if exp and self.stage == "register":
            from tradepipe.runtime.experiments import experiment_metrics

            metrics = experiment_metrics(self.project, exp["name"], str(BIN / "dvc"))
            after = events.decision_from_metrics(metrics.get("metrics/register.json"))
        else:
            after = events.read_state(self.project / state)
        extra = changed(before, after)
        if extra is None:
            self.log.info("%s unchanged: no %s event", state, asset)
        else:
            context["outlet_events"][alias(asset)].add(Asset(asset), extra=extra)
            self.log.info("emitted asset %s %s", asset, extra)
        return result
