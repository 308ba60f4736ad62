"""Stage rl_train: SB3 agents in the risk-managed portfolio env over the validation window, then an ensemble.

The window (split.train_end .. split.val_end, where the predictor's forecasts are out of sample) is cut in
two: agents train on its first part and are scored on the last ``validation_fraction`` (chronologically
after, no overlap); the ensemble selects the best or blends them by that validation Sharpe. With
``rl_train.tune.num_samples`` > 0 each algorithm's hyperparameters are first searched (Ray Tune + Optuna + ASHA)
on the same split; the hyperparameters used and the number of trials go to ``models/agent/tuning.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

import mlflow
from tradepipe.agents.market import build_market
from tradepipe.agents.policy import PolicySpec
from tradepipe.agents.training import equal_weight_sharpes, fit_ensemble, split_tail
from tradepipe.config import Params, RLParams
from tradepipe.core.io import write_json
from tradepipe.core.market import Market
from tradepipe.features import feature_columns
from tradepipe.models.predictor import Predictor
from tradepipe.paths import AGENT, AGENT_TUNING, BARS, FEATURES, PREDICTIONS, PREDICTOR
from tradepipe.runtime.stage import StageError, run_stage


def _tuned(train: Market, val: Market, spec: PolicySpec, cfg: RLParams, seed: int) -> tuple[RLParams, int]:
    """``cfg`` with each algorithm's searched hyperparameters (trials logged as nested runs), and the trial count."""
    from tradepipe.tuning.agents import tune_agent

    best: dict[str, dict[str, Any]] = {}
    n_trials = 0
    for algo in dict.fromkeys(cfg.algos):
        search = tune_agent(algo, train, val, spec, cfg, seed)
        for i, trial in enumerate(search.trials):
            with mlflow.start_run(run_name=f"{algo}-trial-{i}", nested=True):
                mlflow.log_params({"algo": algo, **trial["config"]})
                mlflow.log_metrics({"val_sharpe": trial["val_sharpe"], "reports": trial["reports"]})
        best[algo], n_trials = search.best.model_dump(), n_trials + len(search.trials)
    return cfg.with_agents(best), n_trials


def rl_train(params: Params, root: Path) -> dict[str, float]:
    predictor = Predictor.load(root / PREDICTOR)
    market = build_market(pd.read_parquet(root / BARS), pd.read_parquet(root / FEATURES),
                          pd.read_parquet(root / PREDICTIONS), feature_columns(params.features),
                          predictor.scaler, predictor.forecast_scale)
    # Train where the predictor's forecasts are out-of-sample and the backtest has not begun.
    window = market.window(pd.Timestamp(params.split.train_end, tz="UTC"),
                           pd.Timestamp(params.split.val_end, tz="UTC") + pd.Timedelta(days=1))
    cfg = params.rl_train
    try:
        train, val = split_tail(window, cfg.validation_fraction, cfg.lookback)
    except ValueError as exc:
        raise StageError(f"the RL window {params.split.train_end} .. {params.split.val_end}: {exc}; "
                         "widen the split dates in params.yaml") from exc
    spec = PolicySpec.from_params(window.symbols, params)
    cfg, n_trials = _tuned(train, val, spec, cfg, params.seed) if cfg.tune.num_samples else (cfg, 0)
    fitted = fit_ensemble(train, val, spec, predictor, cfg, params.seed)
    fitted.policy.save(root / AGENT)
    write_json({"n_trials": n_trials, "hyperparameters": {a: cfg.agent(a).model_dump() for a in cfg.algos}},
               root / AGENT_TUNING)
    mlflow.set_tags({"ensemble.mode": cfg.ensemble, "ensemble.reason": fitted.reason,
                     "ensemble.blend": ", ".join(f"{name}={w:.3f}" for name, w in fitted.policy.blend.items())})
    return {"train_bars": float(len(train.timestamps)), "val_bars": float(len(val.timestamps)), **fitted.metrics,
            **equal_weight_sharpes(val, spec), "timesteps": float(cfg.total_timesteps),
            "tune.n_trials": float(n_trials)}


if __name__ == "__main__":
    run_stage("rl_train", rl_train)
