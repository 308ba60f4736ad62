"""Train the configured agents on a market window, score each on a held-out tail, combine them into a policy.

Shared by the rl_train stage (one window) and the walk-forward backtest (one fit per window). Each (window,
algorithm, seed) agent fit is an independent task (``tradepipe.core.parallel``: Ray, or one after another with the
same results); combining the agents of a window happens after its fits, in the caller's process.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from stable_baselines3.common.base_class import BaseAlgorithm

from tradepipe.agents.algorithms import load_agent, make_agent
from tradepipe.agents.ensemble import combine
from tradepipe.agents.env import BookEnv
from tradepipe.agents.policy import Actor, PolicySpec, TradingPolicy, agent_actor, rollout
from tradepipe.config import Algo, RLParams
from tradepipe.core.execution import execute
from tradepipe.core.market import Market
from tradepipe.core.metrics import sharpe_ratio
from tradepipe.core.parallel import SERIAL, Done, Pool, run_tasks
from tradepipe.core.progress import Tracker, progress
from tradepipe.models.predictor import Predictor
from tradepipe.risk import OodReference


@dataclass(frozen=True)
class FittedEnsemble:
    """The combined policy, why it was combined that way, and per-agent figures."""

    policy: TradingPolicy
    reason: str
    metrics: dict[str, float]


def split_tail(window: Market, fraction: float, lookback: int) -> tuple[Market, Market]:
    """``window`` cut into a training head and the last ``fraction`` of its bars (chronologically after)."""
    n_val = round(len(window.timestamps) * fraction)
    if min(n_val, len(window.timestamps) - n_val) <= lookback + 2:
        raise ValueError(f"{len(window.timestamps)} bars are too few to train and validate "
                         f"(validation_fraction={fraction})")
    cut = window.timestamps[-n_val]
    return window.window(window.timestamps[0], cut), window.window(cut)


def executed_sharpe(targets: np.ndarray, market: Market, spec: PolicySpec) -> float:
    """Sharpe of ``targets`` executed on ``market`` from the first fill on."""
    return sharpe_ratio(pd.Series(execute(targets, market.returns, spec.cost_rate).net_returns[spec.lookback:]))


def actor_sharpe(act: Actor, market: Market, spec: PolicySpec) -> float:
    """Sharpe of ``act`` traded through the risk manager on ``market``."""
    return executed_sharpe(rollout(act, spec.env(market), spec.risk_manager(market)), market, spec)


def training_env(train: Market, spec: PolicySpec, cfg: RLParams) -> BookEnv:
    """The env agents train on: ``spec``'s over ``train``, episodes of ``cfg.episode_length`` (at most the
    data), rewarded with ``cfg.reward`` and ``cfg.reward_params``."""
    episode = min(cfg.episode_length, len(train.timestamps) - spec.lookback)
    return spec.env(train, episode_length=episode, reward=cfg.reward, reward_params=cfg.reward_params)


def train_agent(algo: Algo, train: Market, spec: PolicySpec, cfg: RLParams, seed: int,
                label: str = "") -> tuple[BaseAlgorithm, float]:
    """An agent trained on ``train`` and its training speed in env steps per second."""
    agent = make_agent(algo, training_env(train, spec, cfg), spec.risk_manager(train), cfg.agent(algo),
                       cfg.total_timesteps, seed)
    start = time.perf_counter()
    with progress(f"{label}{algo} timesteps", cfg.total_timesteps) as tracker:
        chunk = max(1, cfg.total_timesteps // 20)
        while agent.num_timesteps < cfg.total_timesteps:
            agent.learn(min(chunk, cfg.total_timesteps - agent.num_timesteps), reset_num_timesteps=False)
            tracker.update(agent.num_timesteps,
                           note=f"{agent.num_timesteps / (time.perf_counter() - start):.0f} steps/s")
    return agent, agent.num_timesteps / (time.perf_counter() - start)


@dataclass(frozen=True)
class AgentFit:
    """One algorithm trained on a window and scored on its validation tail; the agent travels as its saved zip
    (no replay buffer), so a fit made in a Ray worker comes back as one made here would."""

    algo: Algo
    saved: bytes
    val_sharpe: float
    steps_per_s: float

    def agent(self) -> BaseAlgorithm:
        """The trained agent (no environment attached)."""
        with tempfile.TemporaryDirectory(prefix="tradepipe-agent-") as tmp:
            path = Path(tmp) / f"{self.algo}.zip"
            path.write_bytes(self.saved)
            return load_agent(self.algo, str(path))


def fit_agent(algo: Algo, seed: int, train: Market, val: Market, label: str, spec: PolicySpec, *,
              cfg: RLParams) -> AgentFit:
    """``algo`` trained on ``train`` with ``seed`` and scored on ``val``: one task of :func:`fit_ensembles`."""
    agent, speed = train_agent(algo, train, spec, cfg, seed, label)
    buffer = io.BytesIO()
    agent.save(buffer)
    trained = AgentFit(algo, buffer.getvalue(), 0.0, speed)
    # scored as the driver will use it: the saved agent's networks
    sharpe = actor_sharpe(agent_actor({algo: trained.agent()}, {algo: 1.0}, spec), val, spec)
    return AgentFit(algo, trained.saved, sharpe, speed)


@dataclass(frozen=True)
class EnsembleJob:
    """One ensemble to fit: its training head, validation tail, the predictor its policy bundles, its seed, and
    its own spec when it differs from the one the batch shares (the backtest's no-forecast ablation)."""

    train: Market
    val: Market
    predictor: Predictor
    seed: int
    label: str = ""
    spec: PolicySpec | None = None


def combine_fits(fits: list[AgentFit], job: EnsembleJob, spec: PolicySpec, cfg: RLParams) -> FittedEnsemble:
    """The agents of ``fits`` (one per algorithm, in ``cfg.algos`` order) combined per ``cfg.ensemble``."""
    agents: dict[str, BaseAlgorithm] = {f.algo: f.agent() for f in fits}
    metrics: dict[str, float] = {}
    for f in fits:
        metrics[f"{f.algo}.train_steps_per_s"], metrics[f"{f.algo}.val_sharpe"] = f.steps_per_s, f.val_sharpe
    blend, reason = combine({f.algo: f.val_sharpe for f in fits}, cfg.ensemble)
    policy = TradingPolicy({name: agents[name] for name in blend}, blend, spec, job.predictor,
                           OodReference.fit(job.train))  # the OOD guard's reference: the bars the agents learned on
    metrics["ensemble.val_sharpe"] = executed_sharpe(policy.targets(job.val), job.val, spec)
    return FittedEnsemble(policy, reason, metrics)


@dataclass(frozen=True)
class FittedJob:
    """A job's ensemble and where each of its agents was fitted (algorithm -> Ray node id)."""

    fitted: FittedEnsemble
    nodes: dict[str, str]
    done: list[Done[AgentFit]]


def _reporter(tracker: Tracker, jobs: list[EnsembleJob], n_algos: int) -> Callable[[int, Done[AgentFit]], None]:
    """What reports agent fit ``i`` of ``jobs`` (``n_algos`` fits a job) on ``tracker`` as it completes."""
    def report(i: int, done: Done[AgentFit]) -> None:
        tracker.advance(note=f"{jobs[i // n_algos].label}{done.value.algo} on node {done.node[:12]}")
    return report


def fit_ensembles(jobs: list[EnsembleJob], spec: PolicySpec, cfg: RLParams, pool: Pool = SERIAL,
                  progress_label: str | None = None) -> list[FittedJob]:
    """Each job's ensemble: every (job, algorithm) agent fit is one task on ``pool`` (seeded with the job's seed),
    the agents are then combined per job in this process. ``spec``: the jobs' spec unless a job names its own.
    With ``progress_label``, each agent fit is reported as it completes (its job's label, algorithm and node)."""
    algos: list[Algo] = list(dict.fromkeys(cfg.algos))
    specs = [job.spec or spec for job in jobs]
    calls = [(algo, job.seed, job.train, job.val, job.label, job_spec) for job, job_spec in zip(jobs, specs,
                                                                                                  strict=True)
             for algo in algos]
    with progress(progress_label, len(calls)) if progress_label else nullcontext() as tracker:
        done = run_tasks(fit_agent, calls, [job.seed for job in jobs for _ in algos], pool, shared={"cfg": cfg},
                         on_done=None if tracker is None else _reporter(tracker, jobs, len(algos)))
    out = []
    for j, (job, job_spec) in enumerate(zip(jobs, specs, strict=True)):
        mine = done[j * len(algos):(j + 1) * len(algos)]
        out.append(FittedJob(combine_fits([d.value for d in mine], job, job_spec, cfg),
                             {algo: d.node for algo, d in zip(algos, mine, strict=True)}, mine))
    return out


def fit_ensemble(train: Market, val: Market, spec: PolicySpec, predictor: Predictor, cfg: RLParams, seed: int,
                 label: str = "", pool: Pool = SERIAL) -> FittedEnsemble:
    """Each of ``cfg.algos`` trained on ``train`` (one task each on ``pool``), scored on ``val``, combined per
    ``cfg.ensemble``."""
    return fit_ensembles([EnsembleJob(train, val, predictor, seed, label)], spec, cfg, pool)[0].fitted


def equal_weight_sharpes(market: Market, spec: PolicySpec) -> dict[str, float]:
    """Validation Sharpe of 1/N in every asset (no cash), executed directly and traded through the risk manager."""
    n = len(market.symbols)
    equal = np.full((len(market.timestamps), n + 1), 1.0 / n)
    equal[:, -1] = 0.0
    return {"equal_weight.val_sharpe": executed_sharpe(equal[:, :-1], market, spec),
            "equal_weight_risk_managed.val_sharpe": actor_sharpe(lambda obs: np.tile(equal[0], (len(obs), 1)),
                                                                 market, spec)}
