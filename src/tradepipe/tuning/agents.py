"""Ray Tune + OptunaSearch + ASHAScheduler over one RL algorithm's hyperparameters.

A trial trains the agent on the training head of the RL window and reports its risk-managed validation Sharpe
``rl_train.tune.reports`` times along the way, so ASHA can stop unpromising trials early.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from tradepipe.agents.algorithms import make_agent
from tradepipe.agents.policy import PolicySpec, agent_actor
from tradepipe.agents.training import actor_sharpe, training_env
from tradepipe.config import AgentParams, Algo, RLParams
from tradepipe.core.market import Market
from tradepipe.core.parallel import Pool, ray_connected
from tradepipe.core.progress import progress
from tradepipe.tuning.search import TrialProgress, tune_space

METRIC = "val_sharpe"


def _trainable(config: dict[str, Any], algo: Algo, train: Market, val: Market, spec: PolicySpec, cfg: RLParams,
               seed: int) -> None:
    import torch

    torch.set_num_threads(1)
    hp = AgentParams.model_validate({**cfg.agent(algo).model_dump(), **config})
    agent = make_agent(algo, training_env(train, spec, cfg), spec.risk_manager(train), hp, cfg.total_timesteps,
                       seed)
    reports = min(cfg.tune.reports, cfg.total_timesteps)
    for k in range(1, reports + 1):
        agent.learn(cfg.total_timesteps * k // reports - agent.num_timesteps, reset_num_timesteps=False)
        tune.report({METRIC: actor_sharpe(agent_actor({algo: agent}, {algo: 1.0}, spec), val, spec)})


@dataclass(frozen=True)
class AgentSearch:
    """The best hyperparameters found for one algorithm, and one record per trial."""

    algo: Algo
    best: AgentParams
    best_val_sharpe: float
    trials: list[dict[str, Any]]


def tune_agent(algo: Algo, train: Market, val: Market, spec: PolicySpec, cfg: RLParams, seed: int) -> AgentSearch:
    """Search ``cfg.tune.search_space`` for ``algo``; the best trial is the best final validation Sharpe among
    those ASHA let run to the end."""
    search = cfg.tune
    reports = min(search.reports, cfg.total_timesteps)
    with ray_connected(Pool(address=search.address, cpus=search.cpus)):
        trainable = tune.with_parameters(_trainable, algo=algo, train=train, val=val, spec=spec, cfg=cfg, seed=seed)
        with (tempfile.TemporaryDirectory(prefix="tradepipe-rl-tune-") as storage,
              progress(f"{algo} tuning trials", search.num_samples) as tracker):
            grid = tune.Tuner(
                tune.with_resources(trainable, {"cpu": 1}),
                param_space=tune_space(search.search_space),
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode="max", num_samples=search.num_samples, search_alg=OptunaSearch(seed=seed),
                    scheduler=ASHAScheduler(max_t=reports, grace_period=min(search.grace_period, reports),
                                            reduction_factor=2),
                    max_concurrent_trials=search.cpus),
                run_config=tune.RunConfig(name=f"rl-tune-{algo}", storage_path=storage, verbose=0,
                                          callbacks=[TrialProgress(tracker, METRIC, "max")]),
            ).fit()
            trials: list[dict[str, Any]] = []
            for result in (grid[i] for i in range(len(grid))):
                if result.error is not None:
                    raise RuntimeError(f"{algo} tuning trial failed: {result.error}")
                last = result.metrics or {}
                trials.append({"config": dict(result.config or {}), METRIC: float(last[METRIC]),
                               "reports": int(last["training_iteration"])})
    finished = [t for t in trials if t["reports"] == reports] or trials
    best = max(finished, key=lambda t: float(t[METRIC]))
    return AgentSearch(algo, AgentParams.model_validate({**cfg.agent(algo).model_dump(), **best["config"]}),
                       float(best[METRIC]), trials)
