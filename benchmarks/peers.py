"""The project's speed next to its peers', measured side by side in one run on this machine.

Run: ``python benchmarks/peers.py [--venv /tmp/peers-venv] [--seconds 2] [--rounds 3] [--project .]``.

The peers live in their own virtualenv (created with ``python3.11 -m venv`` and filled from PyPI on first use,
versions pinned below), never in the project's. Each comparison runs the project's measurement and the peer's
alternately, ``--rounds`` times, each in a fresh process, and keeps the best of each, so both see the same
machine load. Comparisons:

- single-asset env steps/s: ``SingleAssetTradingEnv`` (S&P 500 index, 1990-2022, continuous position) against
  gym-anytrading's ``StocksEnv`` (its bundled GOOGL, window 10, discrete long/short), random actions, no
  wrappers on either.
- 20-asset env steps/s over the full history: ``PortfolioEnv`` (skfolio's 20 stocks, 1990-2022) against FinRL's
  ``StockTradingEnv`` on the same closes (one indicator, the close over its 20-day mean). FinRL is installed
  from PyPI without its dependencies and its env module loaded from the installed file (its unused
  ``stable_baselines3`` import stubbed); nothing of FinRL is copied into this repository.
- backtest bars/s: an SMA(10)/SMA(20) cross, long-only, 0.2% costs, on backtesting's GOOG daily bars, metrics
  included: signals + ``execute`` + ``performance_metrics`` against ``backtesting.Backtest.run``.
- cold start, seconds (lower is better): a fresh process importing the library and running that first backtest,
  against vectorbt's ``Portfolio.from_signals`` + ``stats`` with an empty numba cache (its JIT compile).
- no-op ``dvc repro`` (seconds) of ``--project``, when ``dvc status`` there says every stage is up to date.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PEERS = ["gym-anytrading==2.0.0", "backtesting==0.6.6", "vectorbt==1.2.0", "finrl==0.3.7", "numpy==2.4.6",
         "pandas==3.1.1", "gymnasium==1.4.0", "matplotlib==3.11.2"]
NO_DEPS = {"finrl==0.3.7"}  # its dependencies (alpaca, yfinance, elegantrl, ...) are not needed for the env
HERE = Path(__file__).resolve()


# --- workers: each runs in a fresh process, in the project's interpreter or the peers' -----------------------

def _steps_per_s(env: Any, actions: Any, seconds: float) -> float:
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in actions:
            out = env.step(action)
            if out[2] or out[3]:
                env.reset()
        steps += len(actions)
    return steps / (time.perf_counter() - start)


def tp_single(seconds: float, data: Path) -> float:
    import numpy as np

    from tradepipe.registration import make_single_asset

    env = make_single_asset()
    actions = np.random.default_rng(0).uniform(-1, 1, (4096, 1)).astype(np.float32)
    return _steps_per_s(env, actions, seconds)


def anytrading(seconds: float, data: Path) -> float:
    import numpy as np
    from gym_anytrading.datasets import STOCKS_GOOGL
    from gym_anytrading.envs import StocksEnv

    env = StocksEnv(df=STOCKS_GOOGL, window_size=10, frame_bound=(10, len(STOCKS_GOOGL)))
    actions = np.random.default_rng(0).integers(0, 2, 4096)
    return _steps_per_s(env, actions, seconds)


def tp_portfolio(seconds: float, data: Path) -> float:
    import numpy as np

    from tradepipe.registration import make_portfolio

    env = make_portfolio()
    actions = np.random.default_rng(0).uniform(-1, 1, (1024, *env.action_space.shape)).astype(np.float32)
    return _steps_per_s(env, actions, seconds)


def finrl(seconds: float, data: Path) -> float:
    import importlib.util
    import types

    import numpy as np
    import pandas as pd

    vec_env = types.ModuleType("stable_baselines3.common.vec_env")
    vec_env.DummyVecEnv = object  # type: ignore[attr-defined]  # only used by get_sb_env, not by step
    for name in ("stable_baselines3", "stable_baselines3.common"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["stable_baselines3.common.vec_env"] = vec_env
    found = importlib.util.find_spec("finrl")  # located, not imported: its __init__ pulls in its training stack
    assert found is not None and found.submodule_search_locations
    path = Path(list(found.submodule_search_locations)[0]) / "meta" / "env_stock_trading" / "env_stocktrading.py"
    spec = importlib.util.spec_from_file_location("finrl_env_stocktrading", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    df = pd.read_csv(data / "closes.csv").sort_values(["date", "tic"], ignore_index=True)
    # one indicator, as FinRL's env expects at least one (its trade checks read the first)
    df["sma_ratio_20"] = df["close"] / df.groupby("tic")["close"].transform(lambda c: c.rolling(20, 1).mean())
    df.index = df["date"].factorize()[0]
    n = df["tic"].nunique()
    env = module.StockTradingEnv(df=df, stock_dim=n, hmax=100, initial_amount=1_000_000, num_stock_shares=[0] * n,
                                 buy_cost_pct=[0.001] * n, sell_cost_pct=[0.001] * n, reward_scaling=1e-4,
                                 state_space=1 + 3 * n, action_space=n, tech_indicator_list=["sma_ratio_20"],
                                 print_verbosity=10**9)
    actions = np.random.default_rng(0).uniform(-1, 1, (256, n)).astype(np.float32)
    return _steps_per_s(env, actions, seconds)


def _sma_targets(close: Any) -> Any:
    import numpy as np

    fast = close.rolling(10).mean().to_numpy()
    slow = close.rolling(20).mean().to_numpy()
    return np.nan_to_num((fast > slow).astype(np.float64))[:, None]


def tp_backtest(seconds: float, data: Path) -> float:
    from tradepipe.core.execution import execute
    from tradepipe.core.metrics import performance_metrics
    from tradepipe.data.sources import load_source

    bars = load_source("backtesting_goog", [], "2000-01-01", "2030-01-01")
    close = bars.set_index("timestamp")["close"]
    best, deadline = float("inf"), time.perf_counter() + seconds
    while best == float("inf") or time.perf_counter() < deadline:  # at least once
        start = time.perf_counter()
        run = execute(_sma_targets(close), close.pct_change().fillna(0.0).to_numpy()[:, None], 0.002)
        performance_metrics(__import__("pandas").Series(run.net_returns, close.index))
        best = min(best, time.perf_counter() - start)
    return len(close) / best


def backtesting(seconds: float, data: Path) -> float:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import GOOG, SMA

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(SMA, self.data.Close, 10)
            self.slow = self.I(SMA, self.data.Close, 20)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()

    best, deadline = float("inf"), time.perf_counter() + seconds
    while best == float("inf") or time.perf_counter() < deadline:  # at least once
        start = time.perf_counter()
        Backtest(GOOG, SmaCross, cash=1_000_000, commission=0.002, finalize_trades=True).run()
        best = min(best, time.perf_counter() - start)
    return len(GOOG) / best


def tp_cold(seconds: float, data: Path, start: float) -> float:
    tp_backtest(0.0, data)  # one run: the imports and the first backtest
    return time.perf_counter() - start


def vectorbt_cold(seconds: float, data: Path, start: float) -> float:
    import vectorbt as vbt
    from backtesting.test import GOOG

    close = GOOG["Close"]
    fast, slow = vbt.MA.run(close, 10), vbt.MA.run(close, 20)
    vbt.Portfolio.from_signals(close, fast.ma_crossed_above(slow), fast.ma_crossed_below(slow), fees=0.002).stats()
    return time.perf_counter() - start


def export(seconds: float, data: Path) -> float:
    """Write the 20 stocks' closes (date, tic, close) for FinRL's env."""
    from tradepipe.data.sources import load_source

    bars = load_source("skfolio_sp500", [], "1990-01-01", "2022-12-31")
    frame = bars.rename(columns={"timestamp": "date", "symbol": "tic"})[["date", "tic", "close"]]
    frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")).to_csv(data / "closes.csv", index=False)
    return float(len(frame))


WORKERS = {f.__name__: f for f in (tp_single, anytrading, tp_portfolio, finrl, tp_backtest, backtesting, export)}
COLD = {f.__name__: f for f in (tp_cold, vectorbt_cold)}


# --- the driver ---------------------------------------------------------------------------------------------

def ensure_venv(venv: Path) -> Path:
    """The peers' interpreter, creating and filling the virtualenv first if it lacks a peer."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
    check = subprocess.run([str(python), "-c", "import gym_anytrading, backtesting, vectorbt, finrl"],
                           capture_output=True)
    if check.returncode:
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, *(p for p in PEERS if p not in NO_DEPS)], check=True)
        subprocess.run([*pip, "--no-deps", *NO_DEPS], check=True)
    return python


def measure(python: str, worker: str, seconds: float, data: Path, env: dict[str, str] | None = None) -> float:
    """One measurement by ``worker`` in a fresh ``python`` process."""
    out = subprocess.run([python, str(HERE), "--worker", worker, "--seconds", str(seconds), "--data", str(data)],
                         capture_output=True, text=True, env={**os.environ, **(env or {})})
    if out.returncode:
        raise RuntimeError(f"{worker} failed:\n{out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["value"])


def noop_repro(project: Path, rounds: int) -> str:
    """Best wall time of ``dvc repro`` in ``project`` when nothing changed there, else why it was not measured."""
    dvc = str(Path(sys.executable).parent / "dvc")
    status = subprocess.run([dvc, "status", "--json"], cwd=project, capture_output=True, text=True)
    if status.returncode or json.loads(status.stdout or "{}"):
        return f"not measured: `dvc status` in {project} lists changes (run the pipeline there first)"
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([dvc, "repro"], cwd=project, capture_output=True, check=True)
        best = min(best, time.perf_counter() - start)
    return f"{best:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/peers-venv"), help="the peers' virtualenv")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each timed run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side")
    parser.add_argument("--project", type=Path, default=Path("."), help="where to time a no-op dvc repro")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        start = time.perf_counter()
        value = COLD[args.worker](args.seconds, args.data, start) if args.worker in COLD else \
            WORKERS[args.worker](args.seconds, args.data)
        print(json.dumps({"value": value}))
        return
    peer = str(ensure_venv(args.venv))
    ours = sys.executable
    comparisons = [("single-asset env, steps/s", "tp_single", "anytrading", "gym-anytrading StocksEnv", True),
                   ("20-asset env, full history, steps/s", "tp_portfolio", "finrl", "FinRL StockTradingEnv", True),
                   ("backtest, SMA cross on GOOG, bars/s", "tp_backtest", "backtesting", "backtesting.py", True),
                   ("cold start, import + first backtest, s", "tp_cold", "vectorbt_cold", "vectorbt (numba JIT)",
                    False)]
    print(f"{'what':<40} {'tradepipe':>12} {'peer':>12} {'ratio':>8}  peer")
    with tempfile.TemporaryDirectory(prefix="tradepipe-peers-") as tmp:
        data = Path(tmp)
        measure(ours, "export", 0.0, data)
        for label, mine, theirs, name, higher in comparisons:
            a: list[float] = []
            b: list[float] = []
            for round_ in range(args.rounds):
                a.append(measure(ours, mine, args.seconds, data))
                cache = {"NUMBA_CACHE_DIR": str(data / f"numba-{round_}")}  # empty: vectorbt compiles cold
                b.append(measure(peer, theirs, args.seconds, data, cache))
            best_a, best_b = (max(a), max(b)) if higher else (min(a), min(b))
            ratio = best_a / best_b if higher else best_b / best_a
            fmt = "{:>12,.0f}" if higher else "{:>12.2f}"
            print(f"{label:<40} {fmt.format(best_a)} {fmt.format(best_b)} {ratio:>7.2f}x  {name}", flush=True)
    print(f"{'no-op dvc repro':<40} {noop_repro(args.project.resolve(), args.rounds):>12}")
    print("ratio: how many times faster the project is (above 1) or slower (below 1); best of "
          f"{args.rounds} alternating fresh-process runs of each side")


if __name__ == "__main__":
    main()
