"""Risk manager between any policy and the market: limits, volatility targeting, breaker, stops, turbulence."""

from tradepipe.risk.manager import RiskManager, RiskState
from tradepipe.risk.series import rolling_moments, trailing_quantile, turbulence

__all__ = ["RiskManager", "RiskState", "rolling_moments", "trailing_quantile", "turbulence"]
