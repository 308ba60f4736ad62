"""Stage register: log the trading policy, register agent and predictor, promote past the gate.

The gate compares the challenger with the champion only on identical bars after both were fitted: the champion's
policy is replayed on the challenger's bars after its own fit end and measured on the same fills as the
challenger's walk-forward (``tradepipe.registry.compare``); with too few such bars it is not compared (the test
span's figures chose the champion, so comparing them would select on the test period). The holdout's Sharpe is
the last check and nothing else reads it. Every attempt (a policy registered and judged) is a trial of the test
span's ledger: this stage's MLflow run carries the span tag and one ``ledger.promotion.<key>`` metric.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature

import mlflow
from mlflow import MlflowClient
from tradepipe.agents.policy import PYFUNC_CODE, TradingPolicy, TradingPolicyModel
from tradepipe.backtest.walk_forward import live_window
from tradepipe.config import Params
from tradepipe.core.execution import Financing
from tradepipe.core.io import UnreadableFileError, read_json, read_parquet, write_json
from tradepipe.paths import BACKTEST_METRICS, BACKTEST_RETURNS, BARS, DECISION, LIVE_AGENT, PREDICTOR_RUN
from tradepipe.registry.card import model_card
from tradepipe.registry.compare import Comparison, compare, no_comparison, replay
from tradepipe.registry.gates import decide
from tradepipe.registry.provenance import ProvenanceError, digest_files, load_verified
from tradepipe.registry.versions import (
    AGENT_MODEL,
    FIT_END_TAG,
    FIT_START_TAG,
    PREDICTOR_MODEL,
    TRAIN_END_TAG,
    champion,
    register,
    set_aliases,
)
from tradepipe.runtime.stage import StageError, run_stage
from tradepipe.runtime.tracking import git_commit, output_hashes, pipeline_run_id
from tradepipe.tuning.ledger import SPAN_TAG as LEDGER_SPAN_TAG
from tradepipe.tuning.ledger import Ledger, Trial, backtest_span, trial_key

HISTORY_BARS = 260
SPAN_TAG = "oos_span"  # the bars the version's oos_* figures were measured on
CONTENT_TAG = "tradepipe.content_sha256"  # digest of models/agent_live: an identical policy is not registered again
PREDICTOR_VERSION_TAG = "tradepipe.predictor_version"
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
    info = mlflow.pyfunc.log_model(name="policy", python_model=str(PYFUNC_CODE),  # models from code: no pickle
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


def _fit_start(bars: pd.DataFrame, params: Params) -> str:
    """The first bar of the live policy's fit window (the backtest's live window: the latest train_years)."""
    days = pd.DatetimeIndex(sorted(bars["timestamp"].unique()))
    window = live_window(days, params.backtest.walk_forward, pd.Timestamp(params.split.train_end, tz="UTC"))
    return pd.Timestamp(days[window.train.start]).isoformat()


def _lineage(root: Path, params: Params, bars: pd.DataFrame, results: dict[str, float]) -> dict[str, str]:
    """Version tags: git commit, run id, params hash, the training windows (the live policy's fit window, from its
    first bar to the last: the monitor's drift reference and in-sample boundary), dvc.lock hashes, walk-forward
    metrics."""
    return {"git_commit": git_commit(root), "pipeline_run_id": pipeline_run_id(),
            "params_sha256": hashlib.sha256((root / "params.yaml").read_bytes()).hexdigest(),
            TRAIN_END_TAG: params.split.train_end, FIT_START_TAG: _fit_start(bars, params),
            FIT_END_TAG: pd.Timestamp(bars["timestamp"].max()).isoformat(),
            **{f"oos_{key}": f"{results[f'agent.{key}']:.6f}" for key in LINEAGE_METRICS
               if f"agent.{key}" in results},
            "oos_windows": str(int(results.get("walk_forward.windows", 0))), SPAN_TAG: _span(bars, params),
            **{f"dvc.{path}": digest for path, digest in output_hashes(root).items()}}


def _span(bars: pd.DataFrame, params: Params) -> str:
    """The span the backtest of these bars tested on (the backtest stage's ledger key)."""
    return backtest_span(pd.DatetimeIndex(sorted(bars["timestamp"].unique())), sorted(bars["symbol"].unique()),
                         params.split.val_end)


def _versus_champion(client: MlflowClient, current: ModelVersion | None, root: Path, bars: pd.DataFrame,
                     params: Params) -> Comparison | None:
    """The challenger's walk-forward against the champion's policy replayed on the same bars after the champion's
    fit end (None without a champion). The champion is loaded, verified, only when there are enough such bars."""
    if current is None:
        return None
    fit_end = current.tags.get(FIT_END_TAG)
    if fit_end is None:  # a version registered before the tag: every bar may be in its fit
        return no_comparison(current.version, pd.Timestamp(bars["timestamp"].max()))
    fitted_until = pd.Timestamp(fit_end)
    challenger = read_parquet(root / BACKTEST_RETURNS).set_index("timestamp")["agent"]
    if (n_fresh := int((challenger.index > fitted_until).sum())) < params.register_.min_compare_bars:
        return no_comparison(current.version, fitted_until, n_fresh)
    policy = load_verified(client, AGENT_MODEL, current.version, mlflow.get_tracking_uri(),
                           current.tags).unwrap_python_model().policy
    cfg = params.backtest
    financing = Financing.annual(cfg.cash_rate, params.costs.borrow_bps, cfg.periods_per_year)
    return compare(current.version, fitted_until, challenger, replay(policy, bars, fitted_until, financing),
                   cfg.periods_per_year)


def _record_attempt(span: str, content: str, results: dict[str, float]) -> None:
    """This promotion attempt as a trial of the span's ledger: the policy tried, scored by the out-of-sample Sharpe
    it was judged on (rerunning the same policy on the same span is the same trial)."""
    trial = Trial("promotion", trial_key("promotion", {"content": content, "span": span}), results["agent.sharpe"])
    mlflow.set_tag(LEDGER_SPAN_TAG, span)
    mlflow.log_metrics(Ledger((trial,)).mlflow_metrics())


def _identical(client: MlflowClient, content: str) -> ModelVersion | None:
    """The champion or latest agent version whose policy bundle has digest ``content``, if any."""
    current = champion(client, AGENT_MODEL)
    versions = client.search_model_versions(f"name = '{AGENT_MODEL}'")
    latest = max(versions, key=lambda v: int(v.version), default=None)
    return next((v for v in (current, latest) if v is not None and v.tags.get(CONTENT_TAG) == content), None)


def _unchanged(root: Path, same: ModelVersion, content: str) -> dict[str, float]:
    """Record that nothing was registered: ``models/agent_live`` is byte-identical to version ``same``."""
    check = (f"unchanged: {LIVE_AGENT} (sha256 {content[:16]}…) is identical to {AGENT_MODEL} v{same.version}; "
             "nothing registered")
    mlflow.set_tag("tradepipe.decision", check)
    predictor = same.tags.get(PREDICTOR_VERSION_TAG, "0")
    write_json({"agent_version": same.version, "predictor_version": predictor, "promoted": False,
                "registered": False, "checks": [check]}, root / DECISION)
    return {"promoted": 0.0, "registered": 0.0, "agent_version": float(same.version),
            "predictor_version": float(predictor)}


def register_stage(params: Params, root: Path) -> dict[str, float]:
    try:
        return _register(params, root)
    except (ProvenanceError, UnreadableFileError) as exc:
        raise StageError(str(exc)) from exc


def _register(params: Params, root: Path) -> dict[str, float]:
    results = read_json(root / BACKTEST_METRICS)
    client = MlflowClient()
    content = digest_files(root / LIVE_AGENT)
    same = _identical(client, content)
    if same is not None:
        return _unchanged(root, same, content)
    bars = read_parquet(root / BARS)
    versus = _versus_champion(client, champion(client, AGENT_MODEL), root, bars, params)
    gate = decide(results["agent.sharpe"], results["agent.dsr"], results["agent.max_drawdown"],
                  results["equal_weight_daily.sharpe"], params.register_, versus,
                  results.get("holdout.agent.sharpe"))
    _record_attempt(_span(bars, params), content, results)

    mlflow.log_artifact(str(root / "params.yaml"), "lineage")
    mlflow.log_artifact(str(root / BACKTEST_METRICS), "lineage")
    model_uri = _log_policy(root / LIVE_AGENT, bars)
    run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    lineage = _lineage(root, params, bars, results)
    tags = {**lineage, CONTENT_TAG: content}
    agent = register(client, AGENT_MODEL, model_uri, run_id, tags, f"pending the smoke check; {gate.reason}")
    decision = gate.with_check(*_smoke_check(agent.version, root))
    card = model_card(decision, results, tags,
                      {"test span": lineage[SPAN_TAG], "predictor trained to": params.split.train_end,
                       "live policy fitted on": f"{lineage[FIT_START_TAG][:10]}..{lineage[FIT_END_TAG][:10]}"})
    client.update_model_version(AGENT_MODEL, agent.version, description=card)
    mlflow.set_tag("tradepipe.decision", decision.reason)
    set_aliases(client, AGENT_MODEL, agent.version, decision.promote)
    predictor_run = read_json(root / PREDICTOR_RUN)
    predictor = register(client, PREDICTOR_MODEL, predictor_run["model_uri"], predictor_run["run_id"], lineage,
                         f"Forecasts consumed by {AGENT_MODEL} v{agent.version}.\n\n{card}")
    set_aliases(client, PREDICTOR_MODEL, predictor.version, decision.promote)
    client.set_model_version_tag(AGENT_MODEL, agent.version, PREDICTOR_VERSION_TAG, str(predictor.version))
    write_json({"agent_version": agent.version, "predictor_version": predictor.version,
                "promoted": decision.promote, "registered": True, "checks": decision.checks}, root / DECISION)
    return {"promoted": float(decision.promote), "registered": 1.0, "agent_version": float(agent.version),
            "predictor_version": float(predictor.version)}

if __name__ == "__main__":
    run_stage("register", register_stage)
