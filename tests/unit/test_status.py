"""`tradepipe status`: stage states from DVC, a few figures per stage, the backtest headline, the registry's
aliases with the gate, the paper accounts, where to look; on a real project copy with a real registry."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from mlflow import MlflowClient
from tests import ROOT
from tradepipe.cli import app
from tradepipe.registry.versions import AGENT_MODEL, CHALLENGER, CHAMPION
from tradepipe.status import changes, collect, headline, key_metrics, render

DVC = str(Path(sys.executable).parent / "dvc")


def test_key_metrics_are_a_curated_few_with_every_agent() -> None:
    metrics = {"ensemble.val_sharpe": 0.8, "equal_weight.val_sharpe": 0.9, "sac.val_sharpe": 0.8,
               "td3.val_sharpe": -0.4, "sac.train_steps_per_s": 300.0, "timesteps": 8000.0}
    shown = key_metrics("rl_train", metrics)
    assert [m["key"] for m in shown] == ["ensemble.val_sharpe", "equal_weight.val_sharpe", "sac.val_sharpe",
                                         "td3.val_sharpe", "timesteps"]
    assert shown[2]["label"] == "sac validation Sharpe" and shown[2]["value"] == 0.8
    assert key_metrics("tune", {"n_trials": 6.0, "best_val_loss": 0.5, "other": 1.0}) == [
        {"key": "n_trials", "label": "trials", "value": 6.0},
        {"key": "best_val_loss", "label": "best validation loss", "value": 0.5}]


def test_dvc_changes_are_summarised_per_kind() -> None:
    entries = [{"changed deps": {"src/tradepipe/core": "modified", "params.yaml": {"tune.num_samples": "modified"},
                                 "a": "modified", "b": "modified", "c": "modified", "d": "modified"}},
               {"changed outs": {"models/tune/best_config.json": "deleted"}}, "always changed"]
    assert changes(entries) == ["deps modified: core, a, b, c (+1)", "params modified: tune.num_samples",
                                "outs deleted: models/tune/best_config.json", "always changed"]


def test_headline_keeps_the_main_strategies_in_order() -> None:
    metrics = {f"{s}.{m}": 0.1 for s in ("hrp_monthly", "buy_and_hold_SPX", "agent", "equal_weight_daily",
                                          "equal_weight_risk_managed", "agent_no_forecast") for m in ("sharpe", "cagr")}
    rows = headline(metrics)
    assert [r["strategy"] for r in rows] == ["agent", "agent_no_forecast", "equal_weight_risk_managed",
                                             "equal_weight_daily", "buy_and_hold_SPX"]
    assert rows[0]["sharpe"] == 0.1 and rows[0]["dsr"] is None


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, project / name)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=project, check=True)
    (project / "metrics").mkdir()
    (project / "metrics" / "tune.json").write_text(json.dumps({"n_trials": 6, "best_val_loss": 0.4769}))
    (project / "metrics" / "backtest.json").write_text(json.dumps(
        {"agent.sharpe": 0.9555, "agent.max_drawdown": 0.2178, "equal_weight_daily.sharpe": 0.92}))
    (project / "reports").mkdir()
    (project / "reports" / "register.json").write_text(json.dumps(
        {"promoted": True, "checks": ["pass: Sharpe 0.956 >= minimum 0.300", "pass: v1 loads"]}))
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    client.create_registered_model(AGENT_MODEL)
    for version, description in ((1, "promoted to champion: pass: Sharpe 0.956 >= minimum 0.300; pass: v1 loads"),
                                 (2, "not promoted: FAIL: Sharpe 0.1 < minimum 0.300; pass: v2 loads")):
        client.create_model_version(AGENT_MODEL, str(project), description=description,
                                    tags={"oos_sharpe": "0.9555" if version == 1 else "0.1"})
    client.set_registered_model_alias(AGENT_MODEL, CHAMPION, "1")
    client.set_registered_model_alias(AGENT_MODEL, CHALLENGER, "2")
    return project


def test_status_of_a_project_reads_dvc_metrics_and_the_registry(tmp_path: Path) -> None:
    project = _project(tmp_path)
    status = collect(project)
    assert status["dvc_error"] is None
    states = {s["stage"]: s for s in status["stages"]}
    assert list(states) == ["ingest", "validate", "features", "tune", "train", "rl_train", "backtest", "register"]
    assert states["ingest"]["state"] == "changed"  # never run: DVC says its outputs are missing
    assert any("deleted" in c or "not in cache" in c for c in states["ingest"]["changes"]), states["ingest"]
    assert states["tune"]["metrics"][0] == {"key": "n_trials", "label": "trials", "value": 6.0}
    assert [r["strategy"] for r in status["backtest"]] == ["agent", "equal_weight_daily"]
    agent = status["registry"][AGENT_MODEL]
    assert agent[CHAMPION]["version"] == 1 and agent[CHAMPION]["sharpe"] == 0.9555
    assert agent[CHALLENGER]["checks"] == ["FAIL: Sharpe 0.1 < minimum 0.300", "pass: v2 loads"]
    assert status["registry"]["tradepipe-predictor"] == {CHAMPION: None, CHALLENGER: None}
    assert status["gate"] == {"promoted": True, "checks": ["pass: Sharpe 0.956 >= minimum 0.300", "pass: v1 loads"]}
    assert status["paper_accounts"] == []  # the trading package is there; no account was opened
    assert status["where"]["report"] is None and status["where"]["mlflow_ui"].startswith("http://127.0.0.1")

    console = Console(record=True, width=160)
    console.print(render(status))
    text = console.export_text()
    for fragment in ("Stages", "Backtest (out of sample)", "Registry", "all 2 checks passed",
                     "FAIL: Sharpe 0.1 < minimum 0.300", "Paper accounts", "no paper account yet", "Where to look",
                     "make mlflow-ui", "trials 6, best validation loss 0.4769"):
        assert fragment in text, fragment


def test_status_json_for_scripts(tmp_path: Path) -> None:
    project = _project(tmp_path)
    out = CliRunner().invoke(app, ["status", "--json", "--root", str(project)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["backtest"][0] == {"strategy": "agent", "sharpe": 0.9555, "dsr": None, "cagr": None,
                                   "annual_volatility": None, "max_drawdown": 0.2178, "turnover": None}
