"""Orchestration helpers: asset events of the pipeline, deployment of the champion, the Airflow REST client,
the MLflow webhook relay and the local Airflow stack."""
