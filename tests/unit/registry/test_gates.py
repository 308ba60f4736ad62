"""The promotion gate: every limit can block promotion, and the reason says which."""

from __future__ import annotations

import pandas as pd

from tradepipe.config import RegisterParams
from tradepipe.registry.compare import Comparison
from tradepipe.registry.gates import decide

LIMITS = RegisterParams(min_sharpe=0.5, min_dsr=0.9, max_drawdown=0.3, must_beat_benchmark=True,
                        min_holdout_sharpe=None)
FIT_END = pd.Timestamp("2023-01-02", tz="UTC")


def _versus(champion_sharpe: float, challenger_sharpe: float = 1.0, bars: int = 100) -> Comparison:
    return Comparison("2", FIT_END, bars, FIT_END + pd.Timedelta(days=1), challenger_sharpe, champion_sharpe)


def test_promotes_when_every_check_passes() -> None:
    d = decide(1.0, 0.95, 0.2, 0.8, LIMITS, _versus(0.9), 0.4)
    assert d.promote and d.reason.startswith("promoted") and "FAIL" not in d.reason
    assert len(d.checks) == 5


def test_each_check_blocks() -> None:
    assert not decide(0.4, 0.95, 0.2, 0.3, LIMITS).promote                   # below minimum Sharpe
    assert "FAIL: Deflated Sharpe 0.800 < minimum 0.900" in decide(1.0, 0.8, 0.2, 0.3, LIMITS).reason
    assert "FAIL: max drawdown 35.0%" in decide(1.0, 0.95, 0.35, 0.3, LIMITS).reason
    assert "FAIL: Sharpe 1.000 vs equal-weight 1.100" in decide(1.0, 0.95, 0.2, 1.1, LIMITS).reason
    d = decide(1.0, 0.95, 0.2, 0.3, LIMITS, _versus(1.2, 0.7))             # on the fresh bars, not the test span's
    assert not d.promote and "FAIL: Sharpe 0.700 vs champion v2 1.200 on the same 100 bars" in d.reason


def test_a_failed_smoke_check_blocks_a_passing_gate() -> None:
    gate = decide(1.0, 0.95, 0.2, 0.8, LIMITS)
    assert gate.with_check(True, "loads").promote
    failed = gate.with_check(False, "v3 failed to load")
    assert not failed.promote and failed.reason.startswith("kept as challenger")
    assert failed.checks[-1] == "FAIL: v3 failed to load" and not gate.with_check(True, "x").checks[-1].startswith("F")


def test_benchmark_check_is_optional() -> None:
    limits = RegisterParams(min_sharpe=0.0, min_dsr=0.0, max_drawdown=0.5, must_beat_benchmark=False,
                            min_holdout_sharpe=None)
    assert decide(0.1, 0.0, 0.1, 2.0, limits).promote


def test_the_default_deflated_sharpe_gate_asks_for_95_percent() -> None:
    assert RegisterParams().min_dsr == 0.95
    assert "FAIL: Deflated Sharpe 0.900 < minimum 0.950" in decide(1.0, 0.9, 0.2, 0.3, RegisterParams(), None,
                                                                   0.5).reason
    assert RegisterParams().min_holdout_sharpe == 0.0 and RegisterParams().min_compare_bars == 63
