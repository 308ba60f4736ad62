"""Airflow DAGs of tradepipe (a package only so that the import contract can see them)."""
