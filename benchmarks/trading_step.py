"""Paper-trading speed on the default run's champion (20 symbols): one step, and the replay of one year.

Run after `make run`: ``.venv/bin/python benchmarks/trading_step.py [--bars 40] [--year 2022] [--version N]``.

- Step: a scratch account (its own SQLite trade store and paper broker) opened at the year's first bar steps
  ``--bars`` bars; each step is timed whole (bar checks, reconciliation, sizing, broker fills, features over
  the newest bar's features and forecast from the account's kept market state, policy, risk manager, one store
  transaction). Then where the time of one decision goes: the kept state advanced by one bar (``LiveMarket``) and
  the decision, beside the full recomputation from the anchor that it equals (``market_until``).
- Replay: ``tradepipe trade replay`` of the whole year (fresh account, every bar stepped, then the backtest
  engine on the same bars), with its largest paper-vs-engine differences.
The goals of the paper-trading issue: a step under 50 ms, a year's replay under 30 s (issue 14: see serving_latency).
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
from tradepipe.trading.decision import LiveMarket, decide, market_until, state_from_json
from tradepipe.trading.desk import champion_version, open_desk, registry_policy
from tradepipe.trading.replay import replay

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=40)
    parser.add_argument("--year", type=int, default=2022)
    parser.add_argument("--version", type=int, default=None, help="the agent's registered version (default: champion)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = load_params(ROOT / "params.yaml")
    client, _ = registry_policy(ROOT, params)
    version = args.version or champion_version(client)
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
        stamps = trader.timestamps
        anchor = stamps[stamps < start][-params.trading.warmup_bars]
        first = trader.pending_bars("bench")[0]
        i = int(stamps.get_loc(first))
        window = bars[(bars["timestamp"] >= anchor) & (bars["timestamp"] <= stamps[i - 1])]
        wide = {c: bars.pivot(index="timestamp", columns="symbol", values=c)[policy.spec.symbols].to_numpy()
                for c in ["close"]}
        a = int(stamps.get_loc(anchor))
        live = LiveMarket(policy, window, stamps[a:i], {c: v[a:i] for c, v in wide.items()},
                          np.ones((i - a, n), dtype=bool))
        book, state = np.append(np.zeros(n), 1.0), state_from_json({}, n)
        advance, decision, full = [], [], []
        for k in range(i, i + 20):
            t0 = time.perf_counter()
            live.advance(stamps[k], {c: v[k] for c, v in wide.items()}, np.ones(n, dtype=bool))
            t1 = time.perf_counter()
            decide(policy, live.market, book, 1.0, state, live.risk)
            advance.append(t1 - t0)
            decision.append(time.perf_counter() - t1)
        t0 = time.perf_counter()
        market_until(policy, bars[(bars["timestamp"] >= anchor) & (bars["timestamp"] <= stamps[i + 19])])
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(100):
            live.copy()
        copy_ms = (time.perf_counter() - t0) * 10
        print(f"  of which: newest bar's features + forecast + risk series {1e3 * np.median(advance):.2f} ms, policy + "
              f"risk manager {1e3 * np.median(decision):.2f} ms (medians of 20 bars; recomputing the market from the "
              f"anchor instead: {1e3 * full[0]:.1f} ms over {i + 20 - a} bars; a copy of the kept state, what an "
              f"account advances when another holds it: {copy_ms:.3f} ms)")
        trader.store.dispose()
    t0 = time.perf_counter()
    summary = replay(ROOT, params, policy, version, start, end, bars=trader.bars).summary()
    print(f"replay of {args.year} ({summary['bars']} bars, {n} symbols): {time.perf_counter() - t0:.1f} s; "
          f"max |paper - engine| equity {summary['max_abs_equity_diff']:.1e}, turnover "
          f"{summary['max_abs_turnover_diff']:.1e}, cost {summary['max_abs_cost_diff']:.1e}")


if __name__ == "__main__":
    main()
