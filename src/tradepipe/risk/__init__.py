"""Risk manager between any policy and the market: limits, volatility targeting, breaker, stops, turbulence; the
out-of-distribution reference of a policy's training window."""

from tradepipe.risk.manager import RiskManager, RiskState
from tradepipe.risk.ood import OodReference, Outlier
from tradepipe.risk.series import rolling_moments, trailing_quantile, turbulence

__all__ = ["OodReference", "Outlier", "RiskManager", "RiskState", "rolling_moments", "trailing_quantile",
           "turbulence"]
