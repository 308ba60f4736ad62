"""One tracking-URI resolution for stages, CLI and serving: flag > $MLFLOW_TRACKING_URI > params.yaml > default,
a relative SQLite path always in the project root (never the working directory)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests import ROOT
from tradepipe.config import ConfigError
from tradepipe.runtime.tracking import resolve_tracking_uri


def write_params(root: Path, **tracking: object) -> None:
    """The repository's params.yaml with its ``tracking:`` section replaced."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["tracking"] = tracking
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root, with the working directory somewhere else and no $MLFLOW_TRACKING_URI."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "project"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return root


def test_relative_sqlite_is_resolved_from_the_root_not_the_cwd(project: Path) -> None:
    assert resolve_tracking_uri(project) == f"sqlite:///{project.resolve()}/mlflow.db"  # no params.yaml: default
    write_params(project, uri="sqlite:///store/runs.db")
    assert resolve_tracking_uri(project) == f"sqlite:///{project.resolve()}/store/runs.db"
    # a relative root counts from the working directory, and so does not land in the project
    assert resolve_tracking_uri(Path("../project")) == f"sqlite:///{project.resolve()}/store/runs.db"
    assert resolve_tracking_uri(project, "sqlite:///flag.db") == f"sqlite:///{project.resolve()}/flag.db"


def test_precedence_flag_then_env_then_params_then_default(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_params(project, uri="http://params:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri(project, "http://flag:5000") == "http://flag:5000"
    assert resolve_tracking_uri(project) == "http://env:5000"
    assert resolve_tracking_uri(project, configured="http://loaded:5000") == "http://env:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # empty counts as unset
    assert resolve_tracking_uri(project) == "http://params:5000"
    assert resolve_tracking_uri(project, configured="http://loaded:5000") == "http://loaded:5000"  # a stage's params
    (project / "params.yaml").unlink()
    assert resolve_tracking_uri(project) == f"sqlite:///{project.resolve()}/mlflow.db"


def test_absolute_and_server_uris_are_kept(project: Path) -> None:
    assert resolve_tracking_uri(project, "sqlite:////var/lib/mlflow.db") == "sqlite:////var/lib/mlflow.db"
    assert resolve_tracking_uri(project, "http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_params_yaml_is_read_only_when_nothing_above_it_is_set(project: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    write_params(project, uri="http://params:5000", no_such_key=1)
    with pytest.raises(ConfigError, match="tracking.no_such_key"):
        resolve_tracking_uri(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri(project) == "http://env:5000"
