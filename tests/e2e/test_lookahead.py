"""No look-ahead, end to end: perturb every price after a date t, rerun the stages that turn prices into
decisions, and every decision and every strategy return up to t must be bit-for-bit unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.project import run

pytestmark = pytest.mark.e2e
CUT = pd.Timestamp("2017-07-03", tz="UTC")   # inside the first walk-forward test slice of the smoke profile
PRICES = ["open", "high", "low", "close"]


def _perturb(path: Path, rng: np.random.Generator) -> None:
    """Scale each symbol's prices after CUT by its own random walk (no jumps the validation would flag)."""
    bars = pd.read_parquet(path)
    later = bars["timestamp"] > CUT
    for _, rows in bars[later].groupby("symbol").groups.items():
        factor = np.exp(np.cumsum(rng.normal(0.0, 0.01, len(rows))))
        for column in (c for c in PRICES if c in bars):
            bars.loc[rows, column] = bars.loc[rows, column].to_numpy() * factor
    bars.to_parquet(path, index=False)


def _outputs(project: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    backtest = project / "data" / "backtest"
    return (pd.read_parquet(backtest / "decisions.parquet").set_index("timestamp"),
            pd.read_parquet(backtest / "returns.parquet").set_index("timestamp"))


def test_perturbing_the_future_changes_nothing_up_to_t(project: Path) -> None:
    assert run(["tradepipe", "profile", "smoke"], project).returncode == 0
    first = run(["dvc", "repro", "backtest"], project)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    decisions, returns = _outputs(project)

    rng = np.random.default_rng(7)
    for name in ("bars.parquet", "benchmark.parquet"):
        _perturb(project / "data" / "raw" / name, rng)
    for stage in ("features", "train", "rl_train", "backtest"):   # tune reads only the train/val windows
        again = run(["python", "-m", f"pipelines.{stage}"], project)
        assert again.returncode == 0, stage + again.stderr[-3000:]
    perturbed_decisions, perturbed_returns = _outputs(project)

    assert decisions.index.min() < CUT < decisions.index.max()
    past = decisions.index <= CUT
    pd.testing.assert_frame_equal(decisions[past], perturbed_decisions[past], check_exact=True)
    past = returns.index <= CUT
    pd.testing.assert_frame_equal(returns[past], perturbed_returns[past], check_exact=True)
    # the perturbation reached the data: later decisions and returns did change
    assert not np.allclose(decisions[~(decisions.index <= CUT)], perturbed_decisions[~(decisions.index <= CUT)])
    assert not np.allclose(returns[~past], perturbed_returns[~past])
