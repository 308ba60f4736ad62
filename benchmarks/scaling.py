"""Wall time of independent agent fits as Ray tasks on 1 and 2 local CPUs, and the task graph's critical path.

The fits are the backtest's shape: ``--windows`` walk-forward windows x ``--seeds`` seeds x ``--algos`` (plus the
live fit), each an SB3 fit on a synthetic market of ``--assets`` assets. Every fit is independent; the only
dependency is a window's combine step after its algorithms' fits, so the critical path is one fit plus one
combine, and P cores need about ceil(tasks / P) fit times. Prints measured figures and that projection.

    .venv/bin/python benchmarks/scaling.py --timesteps 2000
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from tradepipe.agents.policy import PolicySpec
from tradepipe.agents.training import EnsembleJob, fit_ensembles, split_tail
from tradepipe.config import AgentParams, RiskParams, RLParams
from tradepipe.core.market import Market
from tradepipe.core.parallel import SERIAL, Pool


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--algos", nargs="+", default=["sac", "td3", "ppo"])
    ap.add_argument("--assets", type=int, default=5)
    ap.add_argument("--timesteps", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    days = pd.bdate_range("2015-01-01", periods=600, tz="UTC")
    market = Market(days, [f"S{i}" for i in range(args.assets)], rng.normal(3e-4, 0.01, (600, args.assets)),
                    rng.normal(size=(600, args.assets, 4)).astype(np.float32),
                    rng.normal(size=(600, args.assets)).astype(np.float32))
    train, val = split_tail(market, 0.25, 1)
    spec = PolicySpec(market.symbols, 1, 0.001, risk=RiskParams())
    cfg = RLParams(algos=args.algos, total_timesteps=args.timesteps,
                   sac=AgentParams(batch_size=128, buffer_size=20000, n_envs=4),
                   td3=AgentParams(batch_size=128, buffer_size=20000, n_envs=4),
                   ppo=AgentParams(batch_size=64, n_steps=128, n_envs=8))
    jobs = [EnsembleJob(train, val, None, 42 + s) for _ in range(args.windows + 1)  # type: ignore[arg-type]
            for s in range(args.seeds)]
    n_tasks = len(jobs) * len(args.algos)
    walls: dict[str, float] = {}
    fit_times: list[float] = []
    for name, pool in (("serial (1 CPU)", SERIAL), ("Ray, 1 CPU", Pool(cpus=1)), ("Ray, 2 CPUs", Pool(cpus=2))):
        start = time.perf_counter()
        done = fit_ensembles(jobs, spec, cfg, pool)
        walls[name] = time.perf_counter() - start
        if pool is SERIAL:
            fit_times = [d.seconds for job in done for d in job.done]
    longest, total = max(fit_times), sum(fit_times)
    print(f"{n_tasks} independent fits ({len(jobs)} ensembles x {len(args.algos)} algorithms), "
          f"{args.timesteps} timesteps each, {args.assets} assets")
    for name, wall in walls.items():
        print(f"  {name:16s} wall {wall:7.1f} s")
    print(f"critical path: one fit then its ensemble's combine; longest fit {longest:.1f} s "
          f"(sum of fits {total:.1f} s)")
    for cores in (2, 16, 64):
        print(f"  {cores:3d} cores: about {max(longest, math.ceil(n_tasks / cores) * total / n_tasks):.1f} s of fits "
              f"({min(cores, n_tasks)} at a time)")


if __name__ == "__main__":
    main()
