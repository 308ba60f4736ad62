"""Stage register: log the trading policy, register agent and predictor, promote past the gate."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
from mlflow.models import infer_signature

import mlflow
from mlflow import MlflowClient
from tradepipe.agents.policy import TradingPolicy, TradingPolicyModel
from tradepipe.config import Params
from tradepipe.core.io import read_json, write_json
from tradepipe.paths import BACKTEST_METRICS, BARS, DECISION, LIVE_AGENT, PREDICTOR_RUN
from tradepipe.registry.gates import decide
from tradepipe.registry.versions import (
    AGENT_MODEL,
    FIT_END_TAG,
    PREDICTOR_MODEL,
    TRAIN_END_TAG,
    champion,
    register,
    set_aliases,
)
from tradepipe.runtime.stage import run_stage
from tradepipe.runtime.tracking import git_commit, output_hashes, pipeline_run_id

HISTORY_BARS = 260
SMOKE_TIMEOUT_S = 600
LINEAGE_METRICS = ("sharpe", "dsr", "psr", "sortino", "calmar", "cagr", "annual_volatility", "max_drawdown",
                   "turnover", "cost_drag", "beta", "alpha")


def _log_policy(policy_dir: Path, bars: pd.DataFrame) -> str:
    """Log the policy as a pyfunc model (signature and input example from a prediction); return its model URI."""
    example = bars.groupby("symbol").tail(HISTORY_BARS).reset_index(drop=True)
    example = example.assign(timestamp=example["timestamp"].astype(str))
    policy = TradingPolicyModel()
    policy.policy = TradingPolicy.load(policy_dir)
    output = policy.predict(None, example)
    info = mlflow.pyfunc.log_model(name="policy", python_model=TradingPolicyModel(),
                                   artifacts={"policy": str(policy_dir)},
                                   signature=infer_signature(example, output), input_example=example)
    return info.model_uri


def _smoke_check(version: str | int, root: Path) -> tuple[bool, str]:
    """Load the registered version and predict on the latest bars in a fresh process (as deploy_champion does)."""
    cmd = [sys.executable, "-m", "tradepipe.orchestration.deploy", str(version)]
    try:
        out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"v{version} did not load and predict within {SMOKE_TIMEOUT_S} s in a fresh process"
    if out.returncode:
        return False, f"v{version} failed to load and predict in a fresh process: {out.stderr.strip()[-400:]}"
    return True, f"v{version} loads and predicts a valid book in a fresh process"


def _lineage(root: Path, params: Params, bars: pd.DataFrame, results: dict[str, float]) -> dict[str, str]:
    """Version tags: git commit, run id, params hash, the training windows' ends (the monitor's in-sample
    boundary: the live policy is fit on every bar up to the last), dvc.lock hashes, walk-forward metrics."""
    return {"git_commit": git_commit(root), "pipeline_run_id": pipeline_run_id(),
            "params_sha256": hashlib.sha256((root / "params.yaml").read_bytes()).hexdigest(),
            TRAIN_END_TAG: params.split.train_end, FIT_END_TAG: pd.Timestamp(bars["timestamp"].max()).isoformat(),
            **{f"oos_{key}": f"{results[f'agent.{key}']:.6f}" for key in LINEAGE_METRICS
               if f"agent.{key}" in results},
            "oos_windows": str(int(results.get("walk_forward.windows", 0))),
            **{f"dvc.{path}": digest for path, digest in output_hashes(root).items()}}


def register_stage(params: Params, root: Path) -> dict[str, float]:
    results = read_json(root / BACKTEST_METRICS)
    client = MlflowClient()
    current = champion(client, AGENT_MODEL)
    champion_sharpe = float(current.tags["oos_sharpe"]) if current and "oos_sharpe" in current.tags else None
    gate = decide(results["agent.sharpe"], results["agent.dsr"], results["agent.max_drawdown"],
                  results["equal_weight_daily.sharpe"], params.register_, champion_sharpe)

    mlflow.log_artifact(str(root / "params.yaml"), "lineage")
    mlflow.log_artifact(str(root / BACKTEST_METRICS), "lineage")
    bars = pd.read_parquet(root / BARS)
    model_uri = _log_policy(root / LIVE_AGENT, bars)
    run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    lineage = _lineage(root, params, bars, results)
    agent = register(client, AGENT_MODEL, model_uri, run_id, lineage, f"pending the smoke check; {gate.reason}")
    decision = gate.with_check(*_smoke_check(agent.version, root))
    client.update_model_version(AGENT_MODEL, agent.version, description=decision.reason)
    mlflow.set_tag("tradepipe.decision", decision.reason)
    set_aliases(client, AGENT_MODEL, agent.version, decision.promote)
    predictor_run = read_json(root / PREDICTOR_RUN)
    predictor = register(client, PREDICTOR_MODEL, predictor_run["model_uri"], predictor_run["run_id"], lineage,
                         f"forecasts consumed by {AGENT_MODEL} v{agent.version}; {decision.reason}")
    set_aliases(client, PREDICTOR_MODEL, predictor.version, decision.promote)
    write_json({"agent_version": agent.version, "predictor_version": predictor.version,
                "promoted": decision.promote, "checks": decision.checks}, root / DECISION)
    return {"promoted": float(decision.promote), "agent_version": float(agent.version),
            "predictor_version": float(predictor.version)}

if __name__ == "__main__":
    run_stage("register", register_stage)
