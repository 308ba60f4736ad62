"""Serving latency: `tradepipe serve` (uvicorn, 127.0.0.1) on a tiny registered policy; p50/p99 and throughput.

Run: .venv/bin/python benchmarks/serving_latency.py [--requests 200] [--concurrency 8] [--extra-bars 0]
Each request carries min_bars (+ extra) bars per symbol of 4 real stocks; also prints where the time goes.
Then the stateful endpoint beside it: a paper account opened 40 bars before the end; each request posts the next
bar only (POST /v1/accounts/bench/bars) and gets the account's decision (one trading step, trade store written).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.policies import publish_champion, tiny_policy  # noqa: E402
from tradepipe.agents.policy import TradingPolicy  # noqa: E402
from tradepipe.config import load_params  # noqa: E402
from tradepipe.data.sources import load_source  # noqa: E402
from tradepipe.features import build_features  # noqa: E402
from tradepipe.paths import BARS  # noqa: E402
from tradepipe.serving.signals import min_bars  # noqa: E402
from tradepipe.settings import API_TOKEN_ENV  # noqa: E402
from tradepipe.trading.accounts import open_account  # noqa: E402
from tradepipe.trading.desk import open_desk  # noqa: E402

ACCOUNT_BARS = 40

TOKEN = "bench"


def _ms(values: list[float]) -> str:
    a = np.asarray(values) * 1e3
    return f"p50 {np.percentile(a, 50):.1f} ms, p99 {np.percentile(a, 99):.1f} ms, max {a.max():.1f} ms (n={a.size})"


def _profile(policy: TradingPolicy, bars: object, repeat: int = 30) -> None:
    torch.set_num_threads(1)
    features = build_features(bars, policy.predictor.features)
    steps = {"features": lambda: build_features(bars, policy.predictor.features),
             "forecasts (CNN-LSTM on those features)": lambda: policy.predictor.predict_features(features),
             "market (both of the above + alignment)": lambda: policy.market(bars),
             "rollout (agent + risk manager per bar)": lambda: policy.targets(market),
             "target_weights (all)": lambda: policy.target_weights(bars)}
    market = policy.market(bars)
    for name, fn in steps.items():
        fn()
        t = time.perf_counter()
        for _ in range(repeat):
            fn()
        print(f"  {name:42s} {(time.perf_counter() - t) / repeat * 1e3:7.2f} ms")


async def _load(base: str, body: dict[str, object], n: int, concurrency: int, budget_s: float) -> None:
    latencies: list[float] = []
    queue = iter(range(n))
    deadline = time.perf_counter() + budget_s

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
            for _ in queue:
                if time.perf_counter() > deadline:
                    return
                t = time.perf_counter()
                (await c.post("/v1/signals", json=body)).raise_for_status()
                latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    print(f"concurrent ({concurrency} clients): {len(latencies) / wall:.1f} req/s; {_ms(latencies)}")


def _project(root: Path, bars: pd.DataFrame, uri: str, first_bar: pd.Timestamp) -> None:
    """A project at ``root`` (params, bars) with paper account ``bench`` opened at ``first_bar`` on the champion."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["trading"].update(warmup_bars=300, max_stale_sessions=100_000)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / BARS).parent.mkdir(parents=True, exist_ok=True)
    bars.to_parquet(root / BARS)
    trader = open_desk(root, load_params(root / "params.yaml"), tracking_uri=uri)
    symbols = trader.policy("tradepipe-agent", 1).spec.symbols
    open_account(trader.store, "bench", 1e6, "tradepipe-agent", 1, symbols, trader.timestamps, first_bar, 300,
                 "simulated")
    trader.broker.open_account("bench", 1e6)  # type: ignore[attr-defined]
    trader.store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--extra-bars", type=int, default=0)
    ap.add_argument("--budget-s", type=float, default=60.0)
    args = ap.parse_args()
    bars = load_source("skfolio_sp500", ["AAPL", "JPM", "KO", "XOM"], "2010-01-01", "2013-12-31")
    with tempfile.TemporaryDirectory() as tmp:
        policy_dir = tiny_policy(bars, Path(tmp) / "policy")
        uri = f"sqlite:///{tmp}/mlflow.db"
        publish_champion(uri, policy_dir)
        policy = TradingPolicy.load(policy_dir)
        n_bars = min_bars(policy) + args.extra_bars
        recent = bars.groupby("symbol").tail(n_bars).reset_index(drop=True)
        body = {"bars": [{"timestamp": ts.isoformat(), "symbol": s, "close": c}
                         for ts, s, c in recent[["timestamp", "symbol", "close"]].itertuples(index=False)]}
        print(f"request: {n_bars} bars x 4 symbols ({len(body['bars'])} rows); in-process breakdown:")
        _profile(policy, recent)
        stamps = sorted(bars["timestamp"].unique())
        _project(Path(tmp), bars[bars["timestamp"] < stamps[-ACCOUNT_BARS]], uri, stamps[-ACCOUNT_BARS - 1])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, API_TOKEN_ENV: TOKEN}
        server = subprocess.Popen([sys.executable, "-m", "tradepipe.cli", "serve", "--port", str(port),
                                   "--tracking-uri", uri, "--poll-seconds", "0", "--root", tmp], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.3)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
                for _ in range(10):
                    c.post("/v1/signals", json=body).raise_for_status()
                seq = []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    c.post("/v1/signals", json=body).raise_for_status()
                    seq.append(time.perf_counter() - t)
            print(f"sequential (1 client): {_ms(seq)}")
            asyncio.run(_load(base, body, args.requests * 2, args.concurrency, args.budget_s))
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
                decided = []
                for ts in stamps[-ACCOUNT_BARS:]:
                    new = bars[bars["timestamp"] == ts]
                    payload = {"bars": [{"timestamp": t.isoformat(), "symbol": sym, "close": close} for t, sym, close
                                        in new[["timestamp", "symbol", "close"]].itertuples(index=False)]}
                    t = time.perf_counter()
                    c.post("/v1/accounts/bench/bars", json=payload).raise_for_status()
                    decided.append(time.perf_counter() - t)
            print(f"stateful decision, one new bar (1 client, 4 symbols): {_ms(decided[1:])}")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
