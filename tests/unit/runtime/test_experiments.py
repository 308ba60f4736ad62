"""Profiles and -S variants as DVC experiments: overrides checked in memory, spelled for DVC's -S, and run by a
real `dvc exp run --temp` without touching the workspace."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import ROOT
from tradepipe.config import ConfigError, read_params_yaml, set_dotted
from tradepipe.runtime.experiments import (
    check_variant,
    exp_run_command,
    experiment_metrics,
    hydra_value,
    parse_sets,
    set_args,
    variant,
)

DVC = str(Path(sys.executable).parent / "dvc")


def test_sets_are_read_as_yaml_and_win_over_the_profile() -> None:
    assert parse_sets(["tune.num_samples=3", "data.symbols=[AAPL, KO]", "data.path=null", "data.end=2018-06-30"]) \
        == {"tune.num_samples": 3, "data.symbols": ["AAPL", "KO"], "data.path": None,
            "data.end": read_params_yaml("2018-06-30")}
    # read as params.yaml is (YAML 1.2): a time stays text (YAML 1.1 reads 16:00 as 960), 1e-3 is a number
    assert parse_sets(["ingest.close_time=16:00", "train.lr=1e-3"]) == {"ingest.close_time": "16:00",
                                                                       "train.lr": 0.001}
    merged = variant(ROOT, "smoke", ["tune.num_samples=3"])
    assert merged["tune.num_samples"] == 3 and merged["data.symbols"] == ["AAPL", "AMD", "JPM", "KO", "XOM"]
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_sets(["tune.num_samples"])


def test_check_variant_validates_in_memory_and_names_the_key(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    before = params.read_bytes()
    assert check_variant(params, variant(ROOT, "smoke", [])).data.symbols == ["AAPL", "AMD", "JPM", "KO", "XOM"]
    with pytest.raises(ConfigError, match="tune.num_sampels"):
        check_variant(params, {"tune.num_sampels": 3})
    with pytest.raises(ConfigError, match="num_samples"):
        check_variant(params, {"tune.num_samples": "many"})
    assert params.read_bytes() == before


def test_hydra_spelling() -> None:
    assert hydra_value(["AAPL", "KO"]) == '["AAPL","KO"]' and hydra_value(None) == "null"
    assert hydra_value({"eta": 0.01}) == "{eta:0.01}" and hydra_value(True) == "true"
    assert set_args({"a.b": 3}) == ["-S", "a.b=3"]
    assert exp_run_command("dvc", "smoke-1", {"a": 1}, "train", force=True) == [
        "dvc", "exp", "run", "--temp", "-n", "smoke-1", "-S", "a=1", "--force", "train"]


def _git(project: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=project, check=True,
                   capture_output=True)


def test_dvc_reads_back_exactly_the_params_the_check_validated(tmp_path: Path) -> None:
    """The smoke profile through a real `dvc exp run --temp`: the experiment's params are params.yaml with the
    overrides set (what check_variant validated), and the workspace keeps its own."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "params.yaml", project / "params.yaml")
    (project / "stage.py").write_text(
        "import json, yaml\np = yaml.safe_load(open('params.yaml'))\n"
        "json.dump({'symbols': len(p['data']['symbols']), 'samples': p['tune']['num_samples']}, open('m.json', 'w'))\n")
    sections = list(yaml.safe_load((project / "params.yaml").read_text()))
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"dump": {
        "cmd": f"{sys.executable} stage.py", "deps": ["stage.py"], "params": sections,
        "metrics": [{"m.json": {"cache": False}}]}}}))
    _git(project, "init", "-q")
    subprocess.run([DVC, "init", "-q"], cwd=project, check=True)
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "init")
    overrides = variant(ROOT, "smoke", ["tune.num_samples=3"])
    check_variant(project / "params.yaml", overrides)
    run = subprocess.run(exp_run_command(DVC, "smoke-test", overrides), cwd=project, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (project / "params.yaml").read_bytes() == (ROOT / "params.yaml").read_bytes()  # workspace untouched
    assert not (project / "m.json").exists()
    shown = json.loads(subprocess.run([DVC, "exp", "show", "--json"], cwd=project, capture_output=True, text=True,
                                      check=True).stdout)
    (exp,) = [r for b in shown for e in b.get("experiments") or [] for r in e["revs"] if r["name"] == "smoke-test"]
    expected = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in overrides.items():
        set_dotted(expected, key, value)
    assert exp["data"]["params"]["params.yaml"]["data"] == expected
    assert experiment_metrics(project, "smoke-test", DVC) == {"m.json": {"symbols": 5, "samples": 3}}
    assert experiment_metrics(project, "no-such", DVC) == {}
