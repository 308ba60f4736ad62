"""Agent files (issue 16): byte-reproducible saves, and loading that unpickles nothing."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import stable_baselines3 as sb3
import stable_baselines3.common.save_util as save_util

from tests import ROOT
from tradepipe.agents.algorithms import load_agent, normalized_zip

_SAVE = """
import sys
import stable_baselines3 as sb3
from tradepipe.agents.algorithms import load_agent
agent = load_agent("sac", sys.argv[1])
agent.save(sys.argv[2])
sb3.SAC.save(agent, sys.argv[3])  # SB3's own save, for comparison
"""


def _save_in_fresh_process(source: Path, out: Path, raw: Path) -> None:
    subprocess.run([sys.executable, "-c", _SAVE, str(source), str(out), str(raw)], cwd=ROOT, check=True,
                   capture_output=True)


def test_the_same_agent_saved_twice_gives_identical_bytes(tiny_policy: Path, tmp_path: Path) -> None:
    for run in ("a", "b"):  # separate processes: other memory addresses, other write times
        _save_in_fresh_process(tiny_policy / "sac.zip", tmp_path / f"{run}.zip", tmp_path / f"raw-{run}.zip")
    first, again = (tmp_path / "a.zip").read_bytes(), (tmp_path / "b.zip").read_bytes()
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(again).hexdigest()
    # what SB3 writes itself differs: entry times and "<function ... at 0x7f...>" in the data JSON
    assert (tmp_path / "raw-a.zip").read_bytes() != (tmp_path / "raw-b.zip").read_bytes()
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == sorted(archive.namelist())
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        data = archive.read("data").decode()
    assert " at 0x0" in data and "start_time" not in json.loads(data)


def test_normalizing_is_idempotent(tiny_policy: Path) -> None:
    once = normalized_zip((tiny_policy / "sac.zip").read_bytes())
    assert normalized_zip(once) == once


def test_load_agent_unpickles_nothing_and_acts_the_same(tiny_policy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tiny_policy / "sac.zip")
    reference = sb3.SAC.load(path, device="cpu")

    def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("cloudpickle.loads was called")

    monkeypatch.setattr(save_util.cloudpickle, "loads", refuse)
    agent = load_agent("sac", path)
    assert agent.observation_space == reference.observation_space
    assert agent.action_space == reference.action_space
    obs = np.random.default_rng(0).normal(size=(16, *reference.observation_space.shape)).astype(np.float32)
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0],
                                  reference.predict(obs, deterministic=True)[0])


def test_load_agent_refuses_a_pickled_entry_it_cannot_rebuild(tiny_policy: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(tiny_policy / "sac.zip") as src, zipfile.ZipFile(tmp_path / "evil.zip", "w") as dst:
        for name in src.namelist():
            payload = src.read(name)
            if name == "data":
                data = json.loads(payload)
                data["surprise"] = {":type:": "<class 'builtins.object'>", ":serialized:": "gAWVAAAA"}
                payload = json.dumps(data).encode()
            dst.writestr(name, payload)
    with pytest.raises(ValueError, match=r"evil\.zip: entry 'surprise' of the agent is pickled"):
        load_agent("sac", str(tmp_path / "evil.zip"))
