"""The import contract (pyproject's [tool.importlinter]) holds, and is live: a forbidden import fails it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ROOT

LINT = Path(sys.executable).parent / "lint-imports"


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on ``project`` (its pyproject.toml, its src/ ahead of the installed package)."""
    env = {**os.environ, "PYTHONPATH": f"{project / 'src'}{os.pathsep}{project}"}
    return subprocess.run([str(LINT), "--no-cache"], cwd=project, env=env, capture_output=True, text=True)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the code the contract covers: src/tradepipe, pipelines, dags and pyproject.toml."""
    for name in ("src/tradepipe", "pipelines", "dags"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_project_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "5 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("core/types.py", "from tradepipe.config import Params", "Layers"),
    ("envs/rewards.py", "import tradepipe.agents.policy", "envs never import agents"),
    ("models/evaluation.py", "import tradepipe.backtest.walk_forward", "models never import backtest"),
    ("data/sources.py", "import pipelines.ingest", "never imports its wiring"),
    ("config.py", "import tradepipe.data.sources", "Layers"),
])
def test_a_forbidden_import_breaks_the_contract(tree: Path, module: str, line: str, contract: str) -> None:
    path = tree / "src" / "tradepipe" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout[-3000:]
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), result.stdout[-3000:]
