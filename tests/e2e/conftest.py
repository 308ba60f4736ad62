"""End-to-end fixtures: a copy of the project as its own git repo, on the smoke profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.project import project_copy


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return project_copy(tmp_path / "project")
