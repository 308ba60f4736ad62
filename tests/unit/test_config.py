"""params.yaml errors name the key; profiles apply in place, keep comments, refuse unknown keys."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import ROOT
from tradepipe.config import ConfigError, Params, load_params, set_dotted
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


# --- issue 16: params validated before anything is deleted ---------------------------------------------------------

def _raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _load(tmp_path: Path, raw: dict) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    load_params(tmp_path / "params.yaml")


# Every section, nested ones included, refuses a key it does not know (a typo must never be ignored).
UNKNOWN_KEY_SITES = [(), ("tracking",), ("data",), ("data", "format"), ("data", "s3"), ("data", "yfinance"),
                     ("split",), ("validate",), ("features",), ("features", "sentiment"), ("tune",),
                     ("tune", "search_space", "lr"), ("tune", "search_space", "seq_len"), ("train",),
                     ("train", "walk_forward"), ("rl_train",), ("rl_train", "sac"), ("rl_train", "td3"),
                     ("rl_train", "ppo"), ("rl_train", "tune"), ("rl_train", "tune", "search_space", "gamma"),
                     ("risk",), ("costs",), ("backtest",), ("backtest", "walk_forward"), ("register",), ("monitor",),
                     ("trading",), ("parallel",)]


@pytest.mark.parametrize("where", UNKNOWN_KEY_SITES, ids=lambda w: ".".join(w) or "(top)")
def test_unknown_key_is_refused_in_every_section(tmp_path: Path, where: tuple[str, ...]) -> None:
    raw = _raw()
    node = raw
    for key in where:
        node = node[key]
    node["no_such_key"] = 1
    dotted = ".".join([*where, "no_such_key"])
    with pytest.raises(ConfigError, match=rf"(?m)^  {dotted}: unknown key"):
        _load(tmp_path, raw)


def test_every_section_of_the_schema_is_probed_for_unknown_keys() -> None:
    from pydantic import BaseModel

    from tradepipe.config import Params

    def sections(model: type[BaseModel], prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        found = {prefix}
        for name, field in model.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                found |= sections(type(default), (*prefix, field.alias or name))
        return found

    required = {("split",), ("features",), ("tune",), ("train",), ("rl_train",), ("train", "walk_forward"),
                ("rl_train", "sac"), ("rl_train", "td3"), ("rl_train", "ppo"), ("rl_train", "tune"),
                ("features", "sentiment")}
    assert sections(Params, ()) | required <= {*UNKNOWN_KEY_SITES, ("tune", "search_space"),
                                               ("rl_train", "tune", "search_space")}


def test_a_typo_names_the_key_and_suggests_the_right_one(tmp_path: Path) -> None:
    raw = _raw()
    raw["train"]["max_epoch"] = raw["train"].pop("max_epochs")  # the probe's typo
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, raw)
    assert "train.max_epoch: unknown key: did you mean 'max_epochs'?" in str(info.value)
    assert "train.max_epochs: missing" in str(info.value)


@pytest.mark.parametrize(("section", "key"), [("data", "start"), ("data", "end"), ("split", "train_end"),
                                              ("split", "val_end"), ("train.walk_forward", "start")])
@pytest.mark.parametrize("bad", ["2014-13-45", "2014-02-30", "yesterday", "2014/01/05"])
def test_an_invalid_date_is_refused_naming_the_key(tmp_path: Path, section: str, key: str, bad: str) -> None:
    raw = _raw()
    set_dotted(raw, f"{section}.{key}", bad)
    with pytest.raises(ConfigError, match=rf"(?m)^  {section}\.{key}: '{bad}' is not a (calendar )?date.*YYYY-MM-DD"):
        _load(tmp_path, raw)


def test_dates_are_ordered_as_dates_not_as_text(tmp_path: Path) -> None:
    raw = _raw()
    raw["split"].update(train_end="2010-12-31", val_end="2010-9-30")  # "2010-9-30" > "2010-12-31" as text
    with pytest.raises(ConfigError, match=r"split\.val_end \(2010-09-30\) must be after split\.train_end"):
        _load(tmp_path, raw)
    raw = _raw()
    raw["split"].update(train_end="2010-9-30", val_end="2014-12-31")   # valid, though "2010-9-30" > "2010-10-1"
    raw["train"]["walk_forward"]["start"] = "2010-10-1"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(tmp_path / "params.yaml")
    assert (params.split.train_end, params.train.walk_forward.start) == ("2010-09-30", "2010-10-01")  # ISO text


def test_an_unquoted_yaml_date_is_read_as_its_iso_text(tmp_path: Path) -> None:
    text = (ROOT / "params.yaml").read_text().replace('val_end: "2014-12-31"', "val_end: 2014-12-31")
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml").split.val_end == "2014-12-31"


def test_walk_forward_start_must_fall_inside_the_data_before_the_test(tmp_path: Path) -> None:
    raw = _raw()
    raw["train"]["walk_forward"]["start"] = "2016-01-01"  # after split.val_end: the RL window has no forecasts
    with pytest.raises(ConfigError, match=r"train\.walk_forward\.start \(2016-01-01\).*split\.val_end"):
        _load(tmp_path, raw)


@pytest.mark.parametrize(("dim", "fragment"), [
    ({"type": "loguniform", "low": -0.001, "high": 0.01}, "needs 0 < 'low'"),
    ({"type": "loguniform", "low": 0, "high": 0.01}, "needs 0 < 'low'"),
    ({"type": "uniform", "low": 0.3, "high": 0.1}, "needs 'low' < 'high'"),
    ({"type": "randint", "low": 1.5, "high": 4}, "'low' must be an integer"),
    ({"type": "randint", "low": 1, "high": 4.5}, "'high' must be an integer"),
    ({"type": "randint", "low": 1}, "needs 'low' < 'high'"),
    ({"type": "choice", "values": []}, "non-empty 'values'"),
    ({"type": "choice"}, "non-empty 'values'"),
    ({"type": "choice", "values": [1, 2], "low": 1}, "remove 'low'/'high'"),
    ({"type": "uniform", "low": 0.1, "high": 0.3, "values": [1]}, "remove 'values'"),
    ({"type": "uniform", "low": True, "high": 0.3}, "valid number"),
])
@pytest.mark.parametrize("where", [("tune", "search_space", "lr"), ("rl_train", "tune", "search_space",
                                                                      "learning_rate")])
def test_search_space_bounds_are_checked(tmp_path: Path, dim: dict, fragment: str, where: tuple[str, ...]) -> None:
    raw = _raw()
    node = raw
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = dim
    with pytest.raises(ConfigError, match=rf"(?m)^  {re.escape('.'.join(where))}[.:].*{re.escape(fragment)}"):
        _load(tmp_path, raw)


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda space: space.update(lrr=space.pop("lr")), r"'lrr' is not a hyperparameter .*did you mean 'lr'"),
    (lambda space: space.update(epochs={"type": "choice", "values": [2]}), r"search_space: 'epochs' is not a hyper"),
    (lambda space: space.pop("seq_len"), r"search_space: \['seq_len'\] missing: every trial needs them"),
])
def test_the_search_space_names_the_predictors_hyperparameters(tmp_path: Path, change: Any, fragment: str) -> None:
    """A misspelt name was dropped silently by the network's builder, a missing lr failed inside a Ray trial."""
    raw = _raw()
    change(raw["tune"]["search_space"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ConfigError, match=rf"(?m)^  tune[.:] .*{fragment}"):
        stage_params(tmp_path / "params.yaml")
    raw["tune"]["search_space"] = _raw()["tune"]["search_space"]  # the shipped space passes
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert set(stage_params(tmp_path / "params.yaml").tune.search_space) == set(raw["tune"]["search_space"])


def test_a_good_randint_dimension_is_accepted(tmp_path: Path) -> None:
    raw = _raw()
    raw["tune"]["search_space"]["lstm_layers"] = {"type": "randint", "low": 1, "high": 3}
    _load(tmp_path, raw)


@pytest.mark.parametrize(("dotted", "value", "fragment"), [
    ("train.max_epochs", True, "valid integer"),         # was read as 1
    ("train.max_epochs", "3", "valid integer"),          # was read as 3
    ("train.max_epochs", 3.0, "valid integer"),
    ("seed", False, "valid integer"),
    ("rl_train.sac.net_arch", [64, True], "valid integer"),
    ("features.return_horizons", [1, "5"], "valid integer"),
    ("register.must_beat_benchmark", 1, "valid boolean"),   # was read as true
    ("register.must_beat_benchmark", "yes", "valid boolean"),
    ("features.ohlcv", 0, "valid boolean"),
    ("risk.long_only", "false", "valid boolean"),           # was read as false
    ("costs.cost_bps", True, "valid number"),               # was read as 1.0
    ("costs.cost_bps", "10", "valid number"),
    ("rl_train.reward_params", {"eta": True}, "valid number"),
])
def test_booleans_integers_and_numbers_are_strict(tmp_path: Path, dotted: str, value: object, fragment: str) -> None:
    raw = _raw()
    set_dotted(raw, dotted, value)
    with pytest.raises(ConfigError, match=rf"(?m)^  {re.escape(dotted)}(\.\w+)?: .*{fragment}.*write"):
        _load(tmp_path, raw)


def test_a_float_key_still_takes_an_int(tmp_path: Path) -> None:
    raw = _raw()
    raw["costs"]["cost_bps"], raw["risk"]["max_gross"] = 10, 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(tmp_path / "params.yaml")
    assert params.costs.cost_bps == 10.0 and isinstance(params.costs.cost_bps, float)


def test_default_and_smoke_params_load_with_unchanged_values(tmp_path: Path) -> None:
    params = load_params(ROOT / "params.yaml")
    dump = params.model_dump()
    # values a probe of the schema must not alter: every default is ISO text, cost_bps a float, ...
    assert (dump["data"]["start"], dump["data"]["end"], dump["split"]["train_end"], dump["split"]["val_end"],
            dump["train"]["walk_forward"]["start"]) == ("1990-01-01", "2022-12-31", "2010-12-31", "2014-12-31",
                                                        "2011-01-01")
    assert dump["costs"] == {"cost_bps": 10.0, "slippage_bps": 5.0, "borrow_bps": 0.0}
    assert isinstance(dump["costs"]["cost_bps"], float)
    assert params == Params.model_validate(dump)  # a round trip through the strict schema
    root = _copy(tmp_path)
    apply_profile(root / "params.yaml", load_profile(root, "smoke"))
    smoke = stage_params(root / "params.yaml")
    assert (smoke.data.start, smoke.split.train_end, smoke.train.walk_forward.start) == (
        "2012-01-01", "2015-12-31", "2016-01-01")
