"""Paper-trading speed on the default run's champion (20 symbols): one step, and the replay of one year.

Run after `make run`: ``.venv/bin/python benchmarks/trading_step.py [--bars 40] [--year 2022]``.

- Step: a scratch account (its own SQLite trade store and paper broker) opened at the year's first bar steps
  ``--bars`` bars; each step is timed whole (bar checks, reconciliation, sizing, broker fills, features over
  the account's window from its anchor, the newest forecast, policy, risk manager, one store transaction).
  Then where the time of one decision goes (features + forecast vs the decision itself).
- Replay: ``tradepipe trade replay`` of the whole year (fresh account, every bar stepped, then the backtest
  engine on the same bars), with its largest paper-vs-engine differences.
The goals of the paper-trading issue: a step under 50 ms, a year's replay under 30 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tradepipe.config import load_params
from tradepipe.registry.versions import AGENT_MODEL
from tradepipe.trading.accounts import open_account
from tradepipe.trading.decision import decide, market_until, state_from_json
from tradepipe.trading.desk import champion_version, open_desk, registry_policy
from tradepipe.trading.replay import replay

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=40)
    parser.add_argument("--year", type=int, default=2022)
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = load_params(ROOT / "params.yaml")
    client, _ = registry_policy(ROOT, params)
    version = champion_version(client)
    start, end = pd.Timestamp(f"{args.year}-01-01", tz="UTC"), pd.Timestamp(f"{args.year}-12-31", tz="UTC")
    with tempfile.TemporaryDirectory() as tmp:
        trader = open_desk(ROOT, params, store_url=f"sqlite:///{tmp}/trades.db", broker_url=f"sqlite:///{tmp}/b.db")
        policy = trader.policy(AGENT_MODEL, version)
        n = len(policy.spec.symbols)
        open_account(trader.store, "bench", 1e6, AGENT_MODEL, version, policy.spec.symbols, trader.timestamps,
                     start, params.trading.warmup_bars, "simulated")
        trader.broker.open_account("bench", 1e6)  # type: ignore[attr-defined]
        times = []
        for bar in trader.pending_bars("bench")[:args.bars]:
            t0 = time.perf_counter()
            trader.step("bench", bar)
            times.append(time.perf_counter() - t0)
        ms = np.asarray(times[1:]) * 1e3  # the first step also warms up torch
        print(f"step, {n} symbols, {params.trading.warmup_bars}+ bars of history: p50 {np.median(ms):.1f} ms, "
              f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms (n={ms.size})")
        bars = trader.bars
        window = bars[(bars["timestamp"] >= trader.timestamps[trader.timestamps < start][-params.trading.warmup_bars])
                      & (bars["timestamp"] <= trader.pending_bars("bench")[0])]
        t0 = time.perf_counter()
        market = market_until(policy, window)
        t1 = time.perf_counter()
        decide(policy, market, np.append(np.zeros(n), 1.0), 1.0, state_from_json({}, n))
        t2 = time.perf_counter()
        print(f"  of which: features + newest forecast {1e3 * (t1 - t0):.1f} ms, policy + risk manager "
              f"{1e3 * (t2 - t1):.1f} ms ({len(market.timestamps)} bars)")
        trader.store.dispose()
    t0 = time.perf_counter()
    summary = replay(ROOT, params, policy, version, start, end, bars=trader.bars).summary()
    print(f"replay of {args.year} ({summary['bars']} bars, {n} symbols): {time.perf_counter() - t0:.1f} s; "
          f"max |paper - engine| equity {summary['max_abs_equity_diff']:.1e}, turnover "
          f"{summary['max_abs_turnover_diff']:.1e}, cost {summary['max_abs_cost_diff']:.1e}")


if __name__ == "__main__":
    main()
