"""The promotion gate: every limit can block promotion, and the reason says which."""

from __future__ import annotations

from tradepipe.config import RegisterParams
from tradepipe.registry.gates import decide

LIMITS = RegisterParams(min_sharpe=0.5, max_drawdown=0.3, must_beat_benchmark=True)


def test_promotes_when_every_check_passes() -> None:
    d = decide(1.0, 0.2, 0.8, LIMITS, champion_sharpe=0.9)
    assert d.promote and d.reason.startswith("promoted") and "FAIL" not in d.reason


def test_each_check_blocks() -> None:
    assert not decide(0.4, 0.2, 0.3, LIMITS).promote                   # below minimum Sharpe
    assert "FAIL: max drawdown 35.0%" in decide(1.0, 0.35, 0.3, LIMITS).reason
    assert "FAIL: Sharpe 1.000 vs equal-weight 1.100" in decide(1.0, 0.2, 1.1, LIMITS).reason
    d = decide(1.0, 0.2, 0.3, LIMITS, champion_sharpe=1.2)
    assert not d.promote and "current champion 1.200" in d.reason


def test_benchmark_check_is_optional() -> None:
    limits = RegisterParams(min_sharpe=0.0, max_drawdown=0.5, must_beat_benchmark=False)
    assert decide(0.1, 0.1, 2.0, limits).promote
