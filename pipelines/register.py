"""Stage register: log the trading policy, register agent and predictor, promote past the gate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlflow.models import infer_signature

import mlflow
from mlflow import MlflowClient
from tradepipe.agents.policy import TradingPolicy, TradingPolicyModel
from tradepipe.config import Params
from tradepipe.data.store import read_json, write_json
from tradepipe.paths import AGENT, BACKTEST_METRICS, BARS, DECISION, PREDICTOR_RUN
from tradepipe.registry.gates import decide
from tradepipe.registry.versions import AGENT_MODEL, PREDICTOR_MODEL, champion, register, set_aliases
from tradepipe.stage import StageError, run_stage
from tradepipe.tracking import git_commit, input_hashes, pipeline_run_id

HISTORY_BARS = 260


def _log_policy(policy_dir: Path, bars: pd.DataFrame) -> str:
    """Log the policy as a pyfunc model, check it loads and predicts, return its model URI."""
    example = bars.groupby("symbol").tail(HISTORY_BARS).reset_index(drop=True)
    example = example.assign(timestamp=example["timestamp"].astype(str))
    policy = TradingPolicyModel()
    policy.policy = TradingPolicy.load(policy_dir)
    output = policy.predict(None, example)
    info = mlflow.pyfunc.log_model(name="policy", python_model=TradingPolicyModel(),
                                   artifacts={"policy": str(policy_dir)},
                                   signature=infer_signature(example, output), input_example=example)
    reloaded = mlflow.pyfunc.load_model(info.model_uri).predict(example)
    if not abs(float(reloaded["weight"].sum()) - 1.0) < 1e-6:
        raise StageError(f"the logged policy {info.model_uri} does not return weights summing to 1; not registered")
    return info.model_uri


def register_stage(params: Params, root: Path) -> dict[str, float]:
    results = read_json(root / BACKTEST_METRICS)
    sharpe, drawdown = results["agent.sharpe"], results["agent.max_drawdown"]
    client = MlflowClient()
    current = champion(client, AGENT_MODEL)
    champion_sharpe = float(current.tags["oos_sharpe"]) if current and "oos_sharpe" in current.tags else None
    decision = decide(sharpe, drawdown, results["equal_weight_daily.sharpe"], params.register_, champion_sharpe)
    mlflow.set_tag("tradepipe.decision", decision.reason)

    model_uri = _log_policy(root / AGENT, pd.read_parquet(root / BARS))
    run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    lineage = {"git_commit": git_commit(root), "pipeline_run_id": pipeline_run_id(),
               "oos_sharpe": f"{sharpe:.6f}", "oos_max_drawdown": f"{drawdown:.6f}",
               **{f"dvc.{k}": v for k, v in input_hashes("register", root).items()}}
    agent = register(client, AGENT_MODEL, model_uri, run_id, lineage, decision.reason)
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
    run_stage("register", register_stage, sections=("register",))
