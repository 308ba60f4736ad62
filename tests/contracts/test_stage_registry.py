"""The stage registry (tradepipe.runtime.stages) and dvc.yaml say the same, and the deps cover the code.

Stage order, params sections, deps and outs must agree; every tradepipe module a stage script imports
(directly or not) must lie under one of its deps, so that editing it makes `dvc repro` rerun the stage; every
out is a constant of tradepipe.paths; stage scripts stay wiring (short functions).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import grimp
import pytest
import yaml

from tests import ROOT
from tradepipe import paths
from tradepipe.runtime.stages import STAGE_NAMES, STAGES, Stage, stage

DVC: dict[str, Any] = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
MAX_FUNCTION_LINES = 45


def _names(entries: list[Any]) -> list[str]:
    """Paths of a dvc.yaml list whose items are a path or ``{path: options}``."""
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def test_stage_order_is_the_registry_order() -> None:
    assert list(DVC) == list(STAGE_NAMES)
    assert STAGE_NAMES == ("ingest", "validate", "features", "tune", "train", "rl_train", "backtest", "register")


@pytest.mark.parametrize("spec", STAGES, ids=STAGE_NAMES)
def test_dvc_yaml_declares_what_the_registry_declares(spec: Stage) -> None:
    entry = DVC[spec.name]
    assert entry["cmd"] == f"python -m pipelines.{spec.name}"
    assert entry["params"] == list(spec.params)
    assert entry["deps"] == list(spec.deps)
    plots = _names(entry.get("plots", []))
    assert sorted(_names(entry["outs"]) + plots) == sorted(str(p) for p in spec.outs)
    assert _names(entry["metrics"]) == [str(spec.metrics)]


def test_every_out_is_a_paths_constant_and_written_by_one_stage() -> None:
    constants = {v for v in vars(paths).values() if isinstance(v, Path)}
    outs = [out for spec in STAGES for out in spec.outs]
    assert set(outs) <= constants
    assert len(outs) == len(set(outs))


def test_inputs_are_outputs_of_earlier_stages() -> None:
    written: set[Path] = set()
    for spec in STAGES:
        assert set(spec.inputs) <= written, spec.name
        written |= {*spec.outs, spec.metrics}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("tradepipe", "pipelines")


def _file(module: str) -> Path:
    """The source file of a tradepipe module."""
    base = ROOT / "src" / Path(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@pytest.mark.parametrize("spec", STAGES, ids=STAGE_NAMES)
def test_deps_cover_every_module_the_stage_imports(spec: Stage, graph: grimp.ImportGraph) -> None:
    imported = {m for m in graph.find_upstream_modules(f"pipelines.{spec.name}") if m.startswith("tradepipe")}
    deps = [ROOT / d for d in spec.deps]
    uncovered = sorted(m for m in imported if not any(_file(m).is_relative_to(d) for d in deps))
    assert not uncovered, f"{spec.name} imports {uncovered} but dvc.yaml does not list them in its deps"
    code = [d for d in spec.deps if d.startswith("src/") and (ROOT / d).is_dir()]
    unused = [d for d in code if not any(_file(m).is_relative_to(ROOT / d) for m in imported)]
    assert not unused, f"{spec.name} lists {unused} as deps but imports nothing from them"


def test_unknown_stage_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown stage 'trian'; choose one of ingest, validate"):
        stage("trian")


@pytest.mark.parametrize("script", sorted((ROOT / "pipelines").glob("[!_]*.py")), ids=lambda p: p.stem)
def test_stage_scripts_are_wiring(script: Path) -> None:
    """No function of a stage script is longer than MAX_FUNCTION_LINES lines: the library does the work."""
    tree = ast.parse(script.read_text())
    long = {f.name: (f.end_lineno or f.lineno) - f.lineno + 1 for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert all(n <= MAX_FUNCTION_LINES for n in long.values()), long
