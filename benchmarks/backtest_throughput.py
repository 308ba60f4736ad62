"""Cold start and throughput of the vectorized backtest engine on the bundled 20-stock universe (1990–2022).

Run: ``python benchmarks/backtest_throughput.py [--repeats 7] [--cold-repeats 3]``.

- Cold start: a fresh ``python -c`` subprocess, timed from just before it starts to when it has imported
  ``tradepipe.core.execution`` and returned from the first ``execute()`` (the returns are built in the
  parent and passed as a .npy file, so loading the dataset is not counted; interpreter start-up is).
- Throughput: asset-bars per second (bars × assets / seconds) of ``execute`` alone, and of ``execute`` plus
  ``performance_metrics`` on its net returns (with turnover, costs and weights), over the full history.
  The target schedule is monthly-rebalanced 1/N, built once outside the timing.
Each figure is the median of the repeats (best also shown; the machine may be shared). The peers (vectorbt,
backtesting.py) are measured beside the project by ``benchmarks/peers.py``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tradepipe.backtest.strategies import equal_weight, month_starts, periodic_rebalance
from tradepipe.core.execution import execute
from tradepipe.core.metrics import performance_metrics
from tradepipe.core.schema import to_wide
from tradepipe.data.sources import load_source

COLD = """
import numpy as np, sys
returns = np.load(sys.argv[1]); targets = np.load(sys.argv[2])
from tradepipe.core.execution import execute
execute(targets, returns, 0.001)
"""


def universe() -> tuple[pd.DatetimeIndex, list[str], np.ndarray]:
    """Timestamps, symbols and simple returns (T, N) of the bundled 20-stock universe, full history."""
    close = to_wide(load_source("skfolio_sp500"))
    returns = close.pct_change(fill_method=None).to_numpy()
    return pd.DatetimeIndex(close.index), [str(c) for c in close.columns], returns


def cold_start(returns: np.ndarray, targets: np.ndarray, repeats: int) -> list[float]:
    """Seconds from launching a fresh interpreter to the end of its first ``execute``."""
    with tempfile.TemporaryDirectory() as folder:
        r_path, t_path = Path(folder, "returns.npy"), Path(folder, "targets.npy")
        np.save(r_path, returns)
        np.save(t_path, targets)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", COLD, str(r_path), str(t_path)], check=True)
            times.append(time.perf_counter() - start)
    return times


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per throughput figure")
    parser.add_argument("--cold-repeats", type=int, default=3, help="fresh interpreters for the cold start")
    parser.add_argument("--cost-rate", type=float, default=0.001, help="cost per unit of turnover")
    args = parser.parse_args()
    timestamps, symbols, returns = universe()
    n_bars, n_assets = returns.shape
    targets = periodic_rebalance(equal_weight(n_bars, n_assets), np.nan_to_num(returns), month_starts(timestamps))
    index = timestamps[1:]

    def with_metrics() -> dict[str, float]:
        run = execute(targets, returns, args.cost_rate)
        return performance_metrics(
            pd.Series(run.net_returns[1:], index=index), turnover=pd.Series(run.turnover[1:], index=index),
            costs=pd.Series(run.costs[1:], index=index),
            weights=pd.DataFrame(run.weights[1:], index=index, columns=symbols))

    asset_bars = n_bars * n_assets
    print(f"universe: {n_assets} assets × {n_bars} bars ({timestamps[0].date()} to {timestamps[-1].date()}) "
          f"= {asset_bars:,} asset-bars; median (best) of the repeats")
    cold = cold_start(returns, targets, args.cold_repeats)
    print(f"{'cold start: python -c → import engine → first execute':<55} "
          f"{statistics.median(cold):>10.2f} s   ({min(cold):.2f} s)")
    for label, fn in (("execute", lambda: execute(targets, returns, args.cost_rate)),
                      ("execute + performance_metrics", with_metrics)):
        times = timed(fn, args.repeats)
        print(f"{label:<55} {asset_bars / statistics.median(times):>12,.0f} asset-bars/s "
              f"({asset_bars / min(times):,.0f}; {statistics.median(times) * 1e3:.1f} ms per run)")


if __name__ == "__main__":
    main()
