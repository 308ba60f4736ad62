"""params.yaml errors name the key; profiles apply in place, keep comments, refuse unknown keys."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests import ROOT
from tradepipe.config import ConfigError, load_params
from tradepipe.runtime.params import stage_params
from tradepipe.runtime.profiles import apply_profile, load_profile


def _copy(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    return tmp_path


def test_default_params_load(params) -> None:
    assert params.tracking.experiment == "tradepipe" and len(params.features.indicators) >= 10


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    text = (root / "params.yaml").read_text().replace("num_samples: 6", "num_samples: 0")
    (root / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"tune\.num_samples"):
        load_params(root / "params.yaml")


def test_rl_search_space_takes_only_tunable_agent_hyperparameters(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    text = (root / "params.yaml").read_text().replace("      gamma: {type: uniform", "      tau: {type: uniform")
    (root / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"rl_train\.tune.*'tau'.*not tunable"):
        load_params(root / "params.yaml")


def test_dates_out_of_order_are_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "params.yaml").write_text((root / "params.yaml").read_text().replace('"2010-12-31"', '"2016-12-31"'))
    with pytest.raises(ConfigError, match="train_end"):
        load_params(root / "params.yaml")


def test_smoke_profile_applies_and_keeps_comments(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    apply_profile(root / "params.yaml", load_profile(root, "smoke"))
    params = load_params(root / "params.yaml")
    smoke = yaml.safe_load((root / "profiles" / "smoke.yaml").read_text())
    assert params.data.symbols == smoke["data.symbols"] and params.tune.num_samples == smoke["tune.num_samples"]
    assert "# Default run: the 20-stock" in (root / "params.yaml").read_text()


def test_unknown_override_and_profile_are_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    before = (root / "params.yaml").read_text()
    with pytest.raises(ConfigError, match="no such key"):
        apply_profile(root / "params.yaml", {"tune.nope": 1})
    with pytest.raises(ConfigError, match="known profiles"):
        load_profile(root, "missing")
    assert (root / "params.yaml").read_text() == before


@pytest.mark.parametrize(("columns", "ohlcv"), [("open,high,low,close,volume", True), ("close", False)])
def test_files_source_builds_ohlcv_indicators_only_when_its_files_have_ohlcv(tmp_path: Path, columns: str,
                                                                             ohlcv: bool) -> None:
    root = _copy(tmp_path)
    bars = tmp_path / "bars.csv"
    values = ",".join(["100"] * len(columns.split(",")))
    bars.write_text(f"timestamp,symbol,{columns}\n2020-01-02,AAA,{values}\n")
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["data"].update(source="files", path=str(bars), benchmark=None)
    raw["features"]["ohlcv"] = None
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    assert stage_params(root / "params.yaml").features.ohlcv is ohlcv
