"""Stage rl_train: SB3 agents in the risk-managed portfolio env over the validation window, then an ensemble.

The window (split.train_end .. split.val_end, where the predictor's forecasts are out of sample) is cut in
two: agents train on its first part and are scored on the last ``validation_fraction`` (chronologically
after, no overlap); the ensemble selects the best or blends them by that validation Sharpe. With
``rl_train.tune.num_samples`` > 0 each algorithm's hyperparameters are first searched (Ray Tune + Optuna + ASHA)
on the same split; the hyperparameters used and the number of trials go to ``models/agent/tuning.json``.

Each algorithm is fitted ``rl_train.seeds`` times (seeds ``seed``, ``seed + 1``, ...), each (algorithm, seed) fit
a Ray task (``parallel``: where, how many CPUs each; the node ids go to ``rl_train/ray_tasks.json``); the policy
saved is the first seed's ensemble, a rule fixed before any result. Every fit of every seed and every tuning trial is a
ledger trial (``tradepipe.tuning.ledger``), recorded with its validation Sharpe in ``tuning.json``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

import mlflow
from tradepipe.agents.market import build_market
from tradepipe.agents.policy import PolicySpec
from tradepipe.agents.training import (
    EnsembleJob,
    FittedEnsemble,
    FittedJob,
    equal_weight_sharpes,
    fit_ensembles,
    split_tail,
)
from tradepipe.config import Params, RLParams
from tradepipe.core.io import write_json
from tradepipe.core.market import Market
from tradepipe.core.parallel import Pool, node_record
from tradepipe.features import feature_columns
from tradepipe.models.predictor import Predictor
from tradepipe.paths import AGENT, AGENT_TUNING, BARS, FEATURES, PREDICTIONS, PREDICTOR
from tradepipe.runtime.stage import StageError, run_stage
from tradepipe.tuning.ledger import trial_key


def _tuned(train: Market, val: Market, spec: PolicySpec, cfg: RLParams, seed: int,
           context: dict[str, Any]) -> tuple[RLParams, list[dict[str, Any]]]:
    """``cfg`` with each algorithm's searched hyperparameters (trials logged as nested runs), and the trials as
    ledger records."""
    from tradepipe.tuning.agents import tune_agent

    best: dict[str, dict[str, Any]] = {}
    ledger: list[dict[str, Any]] = []
    for algo in dict.fromkeys(cfg.algos):
        search = tune_agent(algo, train, val, spec, cfg, seed)
        for i, trial in enumerate(search.trials):
            with mlflow.start_run(run_name=f"{algo}-trial-{i}", nested=True):
                mlflow.log_params({"algo": algo, **trial["config"]})
                mlflow.log_metrics({"val_sharpe": trial["val_sharpe"], "reports": trial["reports"]})
            ledger.append({"kind": "rl_tune", "val_sharpe": trial["val_sharpe"],
                           "key": trial_key("rl_tune", {"algo": algo, "config": trial["config"], **context})})
        best[algo] = search.best.model_dump()
    return cfg.with_agents(best), ledger


def _seed_trials(fits: list[FittedEnsemble], cfg: RLParams, seed: int, context: dict[str, Any]
                 ) -> list[dict[str, Any]]:
    """One ledger record per algorithm and seed: its validation Sharpe, keyed by algorithm, hyperparameters, seed."""
    return [{"kind": "rl_seed", "val_sharpe": fitted.metrics[f"{algo}.val_sharpe"],
             "key": trial_key("rl_seed", {"algo": algo, "seed": seed + s, "hp": cfg.agent(algo).model_dump(),
                                          **context})}
            for s, fitted in enumerate(fits) for algo in dict.fromkeys(cfg.algos)]


def _log_nodes(jobs: list[EnsembleJob], fitted: list[FittedJob], cfg: RLParams) -> None:
    """Where each (algorithm, seed) fit ran: tag ``ray.nodes`` and ``rl_train/ray_tasks.json``."""
    names = [f"{algo} seed {job.seed}" for job in jobs for algo in dict.fromkeys(cfg.algos)]
    record = node_record(names, [d for f in fitted for d in f.done])
    mlflow.set_tag("ray.nodes", ", ".join(record["nodes"]))
    mlflow.log_dict(record, "rl_train/ray_tasks.json")


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
    # what defines a trial beyond its own settings: the forecasts it sees, the window, the env, the training budget
    context = {"predictions_sha256": hashlib.sha256((root / PREDICTIONS).read_bytes()).hexdigest(),
               "split": params.split.model_dump(mode="json"), "features": params.features.model_dump(mode="json"),
               "risk": params.risk.model_dump(mode="json"), "costs": params.costs.model_dump(mode="json"),
               "rl_train": cfg.model_dump(mode="json", exclude={"seeds", "tune", "sac", "td3", "ppo"})}
    cfg, ledger = _tuned(train, val, spec, cfg, params.seed, context) if cfg.tune.num_samples else (cfg, [])
    jobs = [EnsembleJob(train, val, predictor, params.seed + s, label=f"seed {params.seed + s} ")
            for s in range(cfg.seeds)]
    fitted_jobs = fit_ensembles(jobs, spec, cfg, Pool(**params.parallel.model_dump()),  # (algo, seed): a Ray task each
                                progress_label="rl_train agent fits")
    fits = [job.fitted for job in fitted_jobs]
    _log_nodes(jobs, fitted_jobs, cfg)
    fitted = fits[0]  # the rule: the first seed's ensemble is the policy, whatever the other seeds score
    fitted.policy.save(root / AGENT)
    write_json({"n_trials": len(ledger), "hyperparameters": {a: cfg.agent(a).model_dump() for a in cfg.algos},
                "ensemble_val_sharpe": fitted.metrics["ensemble.val_sharpe"],
                "trials": [*ledger, *_seed_trials(fits, cfg, params.seed, context)]}, root / AGENT_TUNING)
    mlflow.set_tags({"ensemble.mode": cfg.ensemble, "ensemble.reason": fitted.reason,
                     "ensemble.blend": ", ".join(f"{name}={w:.3f}" for name, w in fitted.policy.blend.items())})
    seeds = {f"seed_{params.seed + s}.{name}": value for s, f in enumerate(fits) for name, value in f.metrics.items()
             if name.endswith("val_sharpe")}
    return {"train_bars": float(len(train.timestamps)), "val_bars": float(len(val.timestamps)), **fitted.metrics,
            **seeds, **equal_weight_sharpes(val, spec), "timesteps": float(cfg.total_timesteps),
            "tune.n_trials": float(len(ledger)), "seeds": float(cfg.seeds)}


if __name__ == "__main__":
    run_stage("rl_train", rl_train)
