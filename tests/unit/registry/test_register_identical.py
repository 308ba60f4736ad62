"""Issue 16, finding 7: a policy saved again with the same inputs has the same bytes, and `register` does not make
an identical policy a new version (before, SB3's zips changed on every save and each forced backtest did)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from pipelines import register as register_stage
from tests import ROOT
from tradepipe.config import Params
from tradepipe.paths import BACKTEST_METRICS, DECISION, LIVE_AGENT
from tradepipe.registry.provenance import digest_files
from tradepipe.registry.versions import AGENT_MODEL

_RESAVE = """
import sys
from pathlib import Path
from tradepipe.agents.policy import TradingPolicy
TradingPolicy.load(Path(sys.argv[1])).save(Path(sys.argv[2]))
"""


def test_resaved_policy_has_the_same_digest_and_is_not_registered_again(
        tiny_policy: Path, tmp_path: Path, params: Params, publish_champion: Callable[[str, Path], str]) -> None:
    for copy in ("a", "b"):  # two fresh processes, as two forced backtests would save models/agent_live
        subprocess.run([sys.executable, "-c", _RESAVE, str(tiny_policy), str(tmp_path / copy)], cwd=ROOT,
                       check=True, capture_output=True)
    content = digest_files(tmp_path / "a")
    assert digest_files(tmp_path / "b") == content

    root = tmp_path / "project"
    shutil.copytree(tmp_path / "b", root / LIVE_AGENT)
    (root / BACKTEST_METRICS).parent.mkdir(parents=True)
    (root / BACKTEST_METRICS).write_text("{}")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    version = publish_champion(uri, tmp_path / "a")  # the version an earlier register made of the same policy
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_model_version_tag(AGENT_MODEL, version, register_stage.CONTENT_TAG, content)
    client.set_model_version_tag(AGENT_MODEL, version, register_stage.PREDICTOR_VERSION_TAG, "3")

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=client.get_experiment_by_name("serving-tests").experiment_id):
            metrics = register_stage._register(params, root)
    finally:
        mlflow.set_tracking_uri(previous)
    assert metrics == {"promoted": 0.0, "registered": 0.0, "agent_version": float(version), "predictor_version": 3.0}
    assert [str(v.version) for v in client.search_model_versions(f"name = '{AGENT_MODEL}'")] == [version]
    decision = json.loads((root / DECISION).read_text())
    assert decision["registered"] is False and decision["promoted"] is False
    assert f"identical to {AGENT_MODEL} v{version}" in decision["checks"][0]
