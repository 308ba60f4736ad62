"""Each package of tradepipe declares its public API in ``__init__.py`` (``__all__``), and every name resolves.

Packages whose ``__init__`` imports nothing (so that importing them stays light) list their public modules;
the others list what they re-export.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import tradepipe

PACKAGES = sorted(m.name for m in pkgutil.walk_packages(tradepipe.__path__, "tradepipe.") if m.ispkg)


def test_every_layer_is_a_package() -> None:
    assert {p.split(".")[1] for p in PACKAGES} >= {"core", "data", "validation", "envs", "risk", "features",
                                                   "models", "agents", "backtest", "tuning", "runtime", "serving",
                                                   "monitoring", "orchestration", "registry"}


@pytest.mark.parametrize("name", PACKAGES)
def test_package_declares_a_resolvable_public_api(name: str) -> None:
    package = importlib.import_module(name)
    assert isinstance(getattr(package, "__all__", None), list) and package.__all__, f"{name} has no __all__"
    for public in package.__all__:
        assert hasattr(package, public) or importlib.util.find_spec(f"{name}.{public}"), f"{name}.{public}"


@pytest.mark.parametrize("name", PACKAGES)
def test_a_package_that_imports_nothing_lists_every_public_module(name: str) -> None:
    package = importlib.import_module(name)
    tree = ast.parse(Path(package.__file__ or "").read_text())
    if any(isinstance(node, ast.Import | ast.ImportFrom) for node in tree.body):
        return  # it re-exports names; those are checked above
    modules = {m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")}
    assert modules <= set(package.__all__), f"{name}: {sorted(modules - set(package.__all__))} not in __all__"
