"""What the DAGs and the serving app call: asset events, the stage operator, deploy, the Airflow REST client, the
MLflow webhook relay, the local Airflow stack.

Nothing is imported here (importing the package stays light); its public modules:

- ``airflow_api``: A small client of Airflow 3's REST API v2 (JWT from SimpleAuthManager's /auth/token)
- ``deploy``: Deploying the champion: smoke test in a fresh process, switch serving, record or roll back
- ``events``: When the pipeline's stages announce something: new data after ingest, a new champion after register
- ``project``: Where the DAGs and their tasks run: the project root and the interpreter's bin folder
- ``relay``: Relay MLflow registry webhooks to Airflow: a champion alias set in the MLflow UI deploys it
- ``stack``: A local Airflow 3 stack: api-server, scheduler, dag-processor and triggerer as subprocesses
- ``stage_operator``: The Airflow operator shared by the DAGs that run pipeline stages: `dvc repro` of one stage in
  the project,
"""

__all__ = ["airflow_api", "deploy", "events", "project", "relay", "stack", "stage_operator"]
