"""Benchmark allocations refitted on a trailing window: inverse volatility, minimum variance, HRP.

At each rebalance bar t the allocation is fitted on ``returns[max(1, t - window + 1) .. t]`` only (data known
at close t; ``returns[0]`` is ignored, as in the engine), so the decision at t never sees a later bar. The
weights are then held, drifting with prices, until the next rebalance bar (``periodic_rebalance``).

- Warm-up: while the window holds fewer than ``min_periods`` bars the strategy is all cash (it has no
  estimate yet; it does not take credit for a 1/N book it did not choose).
- Eligible assets: those with a finite return on every bar of the window and a non-zero volatility there
  (an asset not yet listed, delisted or with a gap in the window gets weight 0). No eligible asset → cash;
  one → 100 % in it.
- Weights are long-only and sum to 1 over the eligible assets on every fitted rebalance bar.
- ``inverse_vol``: w_i ∝ 1 / σ_i with σ_i the sample standard deviation (ddof=1) over the window (numpy).
- ``mean_variance``: skfolio ``MeanRisk`` with ``RiskMeasure.VARIANCE``; by default the long-only,
  fully-invested minimum-variance portfolio (``ObjectiveFunction.MINIMIZE_RISK``) on a Ledoit-Wolf shrunk
  covariance (``EmpiricalPrior(covariance_estimator=LedoitWolf())``). Minimum variance is the robust
  default: it does not use the noisy mean estimate. ``mv_objective="max_sharpe"`` maximizes the ratio
  (``ObjectiveFunction.MAXIMIZE_RATIO``, risk-free rate 0) on the same prior and falls back to minimum
  variance when the ratio problem fails (e.g. every expected return is negative).
- ``hrp``: skfolio ``HierarchicalRiskParity`` with its defaults (variance risk measure, empirical prior,
  Pearson distance, Ward linkage), long-only.

skfolio is imported only when ``mean_variance`` or ``hrp`` is fitted (its import takes seconds).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tradepipe.backtest.strategies import periodic_rebalance
from tradepipe.core.types import Array

Method = Literal["inverse_vol", "mean_variance", "hrp"]
MVObjective = Literal["min_variance", "max_sharpe"]
METHODS: tuple[Method, ...] = ("inverse_vol", "mean_variance", "hrp")


def _skfolio_estimator(method: Method, mv_objective: MVObjective) -> Any:
    from skfolio.moments import LedoitWolf
    from skfolio.optimization import HierarchicalRiskParity, MeanRisk, ObjectiveFunction
    from skfolio.prior import EmpiricalPrior

    if method == "hrp":
        return HierarchicalRiskParity(min_weights=0.0, max_weights=1.0)
    min_variance = MeanRisk(objective_function=ObjectiveFunction.MINIMIZE_RISK,
                            prior_estimator=EmpiricalPrior(covariance_estimator=LedoitWolf()),
                            min_weights=0.0, max_weights=1.0, budget=1.0)
    if mv_objective == "min_variance":
        return min_variance
    return MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO,
                    prior_estimator=EmpiricalPrior(covariance_estimator=LedoitWolf()),
                    min_weights=0.0, max_weights=1.0, budget=1.0, fallback=min_variance)


def fit_allocation(window_returns: Array, method: Method, *, mv_objective: MVObjective = "min_variance",
                   estimator: Any = None) -> Array:
    """Long-only weights summing to 1 over the columns of ``window_returns`` (bars × assets, all finite).

    ``estimator`` is a reusable skfolio estimator for ``mean_variance``/``hrp`` (built when None).
    """
    x = np.asarray(window_returns, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1 or not np.isfinite(x).all():
        raise ValueError(f"fit_allocation needs >= 2 finite bars of >= 1 asset, got shape {x.shape}")
    if x.shape[1] == 1:
        return np.ones(1)
    if method == "inverse_vol":
        inv = 1.0 / x.std(axis=0, ddof=1)
        return np.asarray(inv / inv.sum(), dtype=np.float64)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    est = estimator if estimator is not None else _skfolio_estimator(method, mv_objective)
    weights = np.clip(np.asarray(est.fit(x).weights_, dtype=np.float64), 0.0, None)  # solver noise below 0
    if not np.isfinite(weights).all() or weights.sum() <= 0:
        raise RuntimeError(f"{method} produced invalid weights {weights}")
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def trailing_weights(returns: Array, rebalance: npt.NDArray[np.bool_], method: Method, window: int,
                     min_periods: int, *, mv_objective: MVObjective = "min_variance") -> Array:
    """Weights last fitted at or before each bar (a step function, no drift); zeros before the first fit.

    Row t depends only on ``returns[:t + 1]``: each rebalance bar fits on its trailing window (module doc).
    """
    r = np.asarray(returns, dtype=np.float64)
    flags = np.asarray(rebalance, dtype=bool)
    if r.ndim != 2 or flags.shape != (r.shape[0],):
        raise ValueError(f"returns must be (T, N) and rebalance (T,), got {r.shape} and {flags.shape}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if window < 2 or not 2 <= min_periods <= window:
        raise ValueError(f"need window >= 2 and 2 <= min_periods <= window, got {window=}, {min_periods=}")
    estimator = None if method == "inverse_vol" else _skfolio_estimator(method, mv_objective)
    out = np.zeros_like(r)
    current = np.zeros(r.shape[1])
    for t in range(r.shape[0]):
        if flags[t]:
            lo = max(1, t - window + 1)
            if t - lo + 1 < min_periods:
                current = np.zeros(r.shape[1])
            else:
                x = r[lo:t + 1]
                eligible = np.isfinite(x).all(axis=0) & (np.nan_to_num(x).std(axis=0) > 0)
                current = np.zeros(r.shape[1])
                if eligible.any():
                    current[eligible] = fit_allocation(x[:, eligible], method, mv_objective=mv_objective,
                                                       estimator=estimator)
        out[t] = current
    return out


def trailing_allocation(returns: Array, rebalance: npt.NDArray[np.bool_], method: Method, window: int,
                        min_periods: int, *, mv_objective: MVObjective = "min_variance") -> Array:
    """Target schedule (T, N) for ``execute``: trade to the trailing-window fit on rebalance bars, drift otherwise.

    On a rebalance bar t the row is the allocation fitted on returns up to t (``trailing_weights``). Between
    rebalances the row is the held book drifted through bar t+1, as in ``periodic_rebalance``: it encodes
    "do not trade" for the engine's fill at close t+1 (that drift is the only use of a later return).
    """
    fitted = trailing_weights(returns, rebalance, method, window, min_periods, mv_objective=mv_objective)
    return periodic_rebalance(fitted, np.nan_to_num(np.asarray(returns, dtype=np.float64)), rebalance)
