"""Serving latency: `tradepipe serve` (uvicorn, 127.0.0.1) on a tiny registered policy; p50/p99 and throughput.

Run: .venv/bin/python benchmarks/serving_latency.py [--requests 200] [--concurrency 8] [--extra-bars 0]
Each request carries min_bars (+ extra) bars per symbol of 4 real stocks; also prints where the time goes. The
servers run without the access log (``--no-access-log``: /metrics counts the requests).
Then the stateful endpoint beside it, on a second server whose champion is a tiny policy over the 20 bundled stocks:
paper accounts opened --account-bars bars before the end; each request posts the next bar only
(POST /v1/accounts/{account}/bars) and gets the account's decision (one trading step: bar checks, reconciliation,
fills at the paper broker, features and forecast of the newest bar, policy, risk manager, trade store written).
One client on one account, then 4 concurrent clients, each on its own account: first each at its own pace (a
replay), then in lockstep (each bar posted by all four at once and awaited, as when a bar closes for every account;
accounts of one anchor and model then share the market state the first of them advanced). The stateful runs are
repeated for each --step-workers (default: 1, the steps in the serving process; 2, in two worker processes, the
accounts dealt to them in turn; the front computes the newest bar's market rows meanwhile). Issue 14's goals: p99
under 10 ms for one client, at least 200 decisions/s for four.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
import psutil
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

UNIVERSE = ["AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO", "LLY", "MRK", "MSFT",
            "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM"]
CLIENTS = 4

TOKEN = "bench"


def _ms(values: list[float]) -> str:
    a = np.asarray(values) * 1e3
    return f"p50 {np.percentile(a, 50):.1f} ms, p99 {np.percentile(a, 99):.1f} ms, max {a.max():.1f} ms (n={a.size})"


class Client:
    """A lean HTTP/1.1 keep-alive client on one connection (asyncio streams), as a load generator should be: its
    CPU comes out of the same 2 cores as the server's (httpx's took 1.6-2.2 ms a request here; this one's is
    printed)."""

    def __init__(self, base: str) -> None:
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes) -> bytes:
        """POST ``body`` (JSON) to ``path`` with the token; the answer's body (RuntimeError unless 200)."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        status = int((await reader.readline()).split()[1])
        length = None
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"{path}: {status} without a Content-Length")
        answer = await reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {answer[:500]!r}")
        return answer

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            await self.streams[1].wait_closed()


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


async def _sequential(base: str, path: str, bodies: list[bytes], warmup: int = 0) -> list[float]:
    """One client posting ``bodies`` to ``path`` one after the other; the latencies after the first ``warmup``."""
    client, latencies = Client(base), []
    try:
        for k, body in enumerate(bodies):
            t = time.perf_counter()
            await client.post(path, body)
            if k >= warmup:
                latencies.append(time.perf_counter() - t)
    finally:
        await client.close()
    return latencies


async def _load(base: str, body: bytes, n: int, concurrency: int, budget_s: float) -> None:
    latencies: list[float] = []
    queue = iter(range(n))
    deadline = time.perf_counter() + budget_s

    async def client() -> None:
        c = Client(base)
        try:
            for _ in queue:
                if time.perf_counter() > deadline:
                    return
                t = time.perf_counter()
                await c.post("/v1/signals", body)
                latencies.append(time.perf_counter() - t)
        finally:
            await c.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    print(f"stateless /v1/signals, concurrent ({concurrency} clients): {len(latencies) / wall:.1f} req/s; "
          f"{_ms(latencies)}")


def _cpu_s(process: psutil.Process) -> float:
    """Seconds of CPU ``process`` has used (user and system)."""
    times = process.cpu_times()
    return float(times.user + times.system)


def _own_cpu() -> float:
    """Seconds of CPU this process (the benchmark's clients) has used."""
    return _cpu_s(psutil.Process())


def _project(root: Path, bars: pd.DataFrame, uri: str, first_bar: pd.Timestamp, accounts: list[str]) -> None:
    """A project at ``root`` (params, bars) with paper ``accounts`` opened at ``first_bar`` on the champion."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["trading"].update(warmup_bars=300, max_stale_sessions=100_000)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / BARS).parent.mkdir(parents=True, exist_ok=True)
    bars.to_parquet(root / BARS)
    trader = open_desk(root, load_params(root / "params.yaml"), tracking_uri=uri)
    symbols = trader.policy("tradepipe-agent", 1).spec.symbols
    for account in accounts:
        open_account(trader.store, account, 1e6, "tradepipe-agent", 1, symbols, trader.timestamps, first_bar, 300,
                     "simulated")
        trader.broker.open_account(account, 1e6)  # type: ignore[attr-defined]
    trader.store.dispose()


def _serve(root: Path, uri: str, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "tradepipe.cli", "serve", "--port", str(port), "--tracking-uri", uri,
               "--poll-seconds", "0", "--root", str(root), "--no-access-log", *options]
    server = subprocess.Popen(command, env={**os.environ, API_TOKEN_ENV: TOKEN}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    return server, base


def _payloads(bars: pd.DataFrame, stamps: list[pd.Timestamp]) -> list[bytes]:
    """One request body per timestamp: its bars (a SignalsRequest), as JSON."""
    out = []
    for ts in stamps:
        new = bars[bars["timestamp"] == ts]
        out.append(json.dumps({"bars": [{"timestamp": t.isoformat(), "symbol": sym, "close": close} for t, sym, close
                                        in new[["timestamp", "symbol", "close"]].itertuples(index=False)]}).encode())
    return out


async def _accounts(base: str, payloads: list[bytes], accounts: list[str], lockstep: bool = False
                    ) -> tuple[float, int, list[float]]:
    """Each account's client posts ``payloads`` in turn: at its own pace, or in ``lockstep`` (every client posts a
    bar, all answers awaited, then the next bar: as when a bar closes for every account at once). Every answer
    must say each new bar was traded."""
    latencies: list[float] = []
    decisions = 0
    clients = {a: Client(base) for a in accounts}

    async def post(account: str, payload: bytes) -> None:
        nonlocal decisions
        t = time.perf_counter()
        answer = await clients[account].post(f"/v1/accounts/{account}/bars", payload)
        latencies.append(time.perf_counter() - t)
        steps = [s["status"] for s in json.loads(answer)["steps"]]
        assert steps and set(steps) == {"traded"}, answer
        decisions += len(steps)

    async def own_pace(account: str) -> None:
        for payload in payloads:
            await post(account, payload)

    start = time.perf_counter()
    try:
        if lockstep:
            for payload in payloads:
                await asyncio.gather(*(post(a, payload) for a in accounts))
        else:
            await asyncio.gather(*(own_pace(a) for a in accounts))
    finally:
        for c in clients.values():
            await c.close()
    return time.perf_counter() - start, decisions, latencies


def _stateful(tmp: Path, n_bars: int, step_workers: int) -> None:
    """The account endpoint on a champion trading the 20 bundled stocks (see the module doc)."""
    bars = load_source("skfolio_sp500", UNIVERSE, "2010-01-01", "2013-12-31")
    root = tmp / f"accounts-{step_workers}"
    root.mkdir()
    policy_dir = tiny_policy(bars, root / "policy")
    uri = f"sqlite:///{root}/mlflow.db"
    publish_champion(uri, policy_dir)
    stamps = sorted(bars["timestamp"].unique())
    posted = stamps[-n_bars:]
    accounts = ["solo", *(f"client{i}" for i in range(CLIENTS))]
    _project(root, bars[bars["timestamp"] < posted[0]], uri, stamps[-n_bars - 1], accounts)
    server, base = _serve(root, uri, "--step-workers", str(step_workers))
    cpu = psutil.Process(server.pid)  # the server's CPU time (all its threads and workers) per decision
    where = "in the serving process" if step_workers == 1 else f"in {step_workers} step workers"

    def cpu_each() -> list[float]:  # seconds of CPU: the server, then each of its step workers
        workers = (p for p in cpu.children(recursive=True) if "spawn_main" in " ".join(p.cmdline()))
        return [_cpu_s(p) for p in [cpu, *workers]]

    def cpu_s() -> float:
        return sum(cpu_each())

    try:
        payloads = _payloads(bars, posted)
        asyncio.run(_sequential(base, "/v1/accounts/solo/bars", payloads[:1]))  # opens: the first bar decided
        each, client = cpu_each(), _own_cpu()
        one = asyncio.run(_sequential(base, "/v1/accounts/solo/bars", payloads[1:]))
        each = [(after - e) / len(one) * 1e3 for after, e in zip(cpu_each(), each, strict=True)]
        client = (_own_cpu() - client) / len(one) * 1e3
        split = f" (the front {each[0]:.1f} ms, the workers {', '.join(f'{e:.1f}' for e in each[1:])})" \
            if len(each) > 1 else ""
        print(f"stateful decision ({where}), one new bar ({len(UNIVERSE)} symbols), 1 client: {_ms(one[5:])}; "
              f"server CPU {sum(each):.1f} ms a decision{split}, the client's {client:.1f} ms [goal: p99 < 10 ms]")
        asyncio.run(_accounts(base, payloads[:1], accounts[1:]))  # each account's opening decision
        half = len(payloads) // 2  # the first half at each client's own pace, the second half in lockstep
        for lockstep, part in ((False, payloads[1:half]), (True, payloads[half:])):
            used, client = cpu_s(), _own_cpu()
            wall, decisions, latencies = asyncio.run(_accounts(base, part, accounts[1:], lockstep))
            used, client = cpu_s() - used, _own_cpu() - client
            pace = "in lockstep, bar by bar" if lockstep else "each at its own pace"
            print(f"stateful decisions ({where}), {CLIENTS} concurrent clients (one account each, {pace}): "
                  f"{decisions / wall:.0f} decisions/s; {_ms(latencies)}; server CPU {used / decisions * 1e3:.1f} ms "
                  f"a decision, the clients' {client / decisions * 1e3:.1f} ms [goal: >= 200 decisions/s]")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--extra-bars", type=int, default=0)
    ap.add_argument("--budget-s", type=float, default=60.0)
    ap.add_argument("--account-bars", type=int, default=200)
    ap.add_argument("--step-workers", type=int, nargs="+", default=[1, 2], help="the stateful runs' --step-workers")
    args = ap.parse_args()
    bars = load_source("skfolio_sp500", ["AAPL", "JPM", "KO", "XOM"], "2010-01-01", "2013-12-31")
    with tempfile.TemporaryDirectory() as tmp:
        policy_dir = tiny_policy(bars, Path(tmp) / "policy")
        uri = f"sqlite:///{tmp}/mlflow.db"
        publish_champion(uri, policy_dir)
        policy = TradingPolicy.load(policy_dir)
        n_bars = min_bars(policy) + args.extra_bars
        recent = bars.groupby("symbol").tail(n_bars).reset_index(drop=True)
        rows = [{"timestamp": ts.isoformat(), "symbol": s, "close": c}
                for ts, s, c in recent[["timestamp", "symbol", "close"]].itertuples(index=False)]
        body = json.dumps({"bars": rows}).encode()
        print(f"request: {n_bars} bars x 4 symbols ({len(rows)} rows); in-process breakdown:")
        _profile(policy, recent)
        (Path(tmp) / BARS).parent.mkdir(parents=True, exist_ok=True)
        (Path(tmp) / "params.yaml").write_text((ROOT / "params.yaml").read_text())
        bars.to_parquet(Path(tmp) / BARS)
        server, base = _serve(Path(tmp), uri)
        try:
            seq = asyncio.run(_sequential(base, "/v1/signals", [body] * (10 + args.requests), warmup=10))
            print(f"stateless /v1/signals, sequential (1 client): {_ms(seq)}")
            asyncio.run(_load(base, body, args.requests * 2, args.concurrency, args.budget_s))
        finally:
            server.terminate()
            server.wait(timeout=30)
        for workers in args.step_workers:
            _stateful(Path(tmp), args.account_bars, workers)


if __name__ == "__main__":
    main()
