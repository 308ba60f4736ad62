"""Where the DAGs run: $TRADEPIPE_PROJECT, else the parent of the DAG folder; the environment's bin first on PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests import ROOT
from tradepipe.orchestration.airflow_api import AirflowAPI
from tradepipe.orchestration.project import bin_path, project_root


def test_project_root_is_the_dag_folders_parent_unless_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEPIPE_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert project_root(ROOT / "dags" / "training_pipeline.py") == ROOT.resolve()
    assert project_root("dags/x.py") == tmp_path.resolve()  # a relative DAG path from the working directory
    monkeypatch.setenv("TRADEPIPE_PROJECT", str(tmp_path / "deployed"))
    assert project_root(ROOT / "dags" / "training_pipeline.py") == tmp_path / "deployed"


def test_bin_path_puts_this_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin")
    assert bin_path() == f"{Path(sys.executable).parent}{os.pathsep}/usr/bin"


def test_airflow_client_from_the_environment_hides_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEPIPE_AIRFLOW_PASSWORD", raising=False)
    monkeypatch.delenv("TRADEPIPE_AIRFLOW_URL", raising=False)
    with pytest.raises(ValueError, match="TRADEPIPE_AIRFLOW_PASSWORD"):
        AirflowAPI.from_env()
    monkeypatch.setenv("TRADEPIPE_AIRFLOW_PASSWORD", "hunter2")
    monkeypatch.setenv("TRADEPIPE_AIRFLOW_USER", "ops")
    api = AirflowAPI.from_env()
    assert (api.url, api.username, api.password) == ("http://127.0.0.1:8080", "ops", "hunter2")
    assert "hunter2" not in repr(api)
