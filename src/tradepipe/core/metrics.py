"""Performance metrics over a series of per-bar simple returns.

Conventions (the common empyrical / quantstats definitions):

- ``returns`` are simple returns per bar (daily by default), ``periods_per_year`` = 252.
- ``risk_free_rate`` is an annual rate, converted per bar by compounding:
  ``rf_p = (1 + risk_free_rate) ** (1 / periods_per_year) - 1``; "excess" means ``r - rf_p``.
- Standard deviations are sample standard deviations (``ddof=1``).
- Sharpe = mean(excess) / std(excess) * sqrt(periods_per_year).
- Sortino = mean(excess) / downside deviation * sqrt(periods_per_year), downside deviation
  = sqrt(mean(min(excess, 0) ** 2)) (as empyrical's ``downside_risk``, target = risk-free rate).
- Equity compounds from 1.0 *before* the first bar, so a loss on the first bar is a drawdown.
  total_return = equity[-1] - 1; CAGR = equity[-1] ** (1 / years) - 1 with years = n / periods_per_year.
- max_drawdown is a positive fraction below the running peak; Calmar = CAGR / max_drawdown.
- max_drawdown_duration: the longest span, in bars, from a peak to the bar that regains it, or to the
  last bar when the equity has not recovered.
- hit_rate: share of positive bars among bars with a non-zero return (quantstats' ``win_rate``).
- beta = cov(excess, benchmark excess) / var(benchmark excess) on the common dates;
  alpha = (1 + mean(excess - beta * benchmark excess)) ** periods_per_year - 1 (empyrical's annual alpha).
- turnover and cost_drag are per-bar means times periods_per_year; exposure is the mean over bars of the
  gross asset weight sum(|w|).
- PSR / DSR (Bailey & López de Prado 2012, 2014) use the per-bar (not annualized) Sharpe of the excess
  returns, the sample skewness and the Pearson kurtosis (normal = 3) with the biased moment estimators.
- Every value is a finite float so the dict is JSON-safe: a ratio whose denominator is zero (no
  volatility, no downside, no drawdown, a constant benchmark) is reported as 0.0.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

PERIODS_PER_YEAR = 252
EULER_GAMMA = 0.5772156649015329


def _per_period_rate(annual_rate: float, periods_per_year: int) -> float:
    return float((1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0)


def _values(returns: pd.Series, name: str = "returns") -> np.ndarray:
    values = np.asarray(returns, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if not np.isfinite(values).all():
        bad = returns.index[~np.isfinite(values)][0]
        raise ValueError(f"{name} contain a non-finite value at {bad}: drop or fill NaN/inf first")
    return values


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or 0.0 when the denominator is zero (JSON-safe convention)."""
    return float(numerator / denominator) if denominator > 0 else 0.0


def _std(values: np.ndarray) -> float:
    """Sample standard deviation; exactly 0.0 for identical values (no float-rounding residue)."""
    return float(np.std(values, ddof=1)) if values.size > 1 and np.ptp(values) > 0 else 0.0


def _sharpe(excess: np.ndarray, periods_per_year: int) -> float:
    return _ratio(float(np.mean(excess)), _std(excess)) * math.sqrt(periods_per_year)


def _equity_with_start(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[1.0], np.cumprod(1.0 + values)])


def sharpe_ratio(returns: pd.Series, *, risk_free_rate: float = 0.0,
                 periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Annualized Sharpe ratio of ``returns`` over the (annual) risk-free rate; 0.0 if volatility is zero."""
    excess = _values(returns) - _per_period_rate(risk_free_rate, periods_per_year)
    return _sharpe(excess, periods_per_year)


def drawdown_series(returns: pd.Series) -> pd.Series:
    """Fraction below the running peak of the equity curve at each bar (values <= 0)."""
    equity = _equity_with_start(_values(returns))
    peak = np.maximum.accumulate(equity)
    return pd.Series(equity[1:] / peak[1:] - 1.0, index=returns.index, name="drawdown")


def max_drawdown(returns: pd.Series) -> float:
    """Largest peak-to-trough loss of the equity curve as a positive fraction (0.0 if none)."""
    if len(returns) == 0:
        return 0.0
    return float(max(0.0, -drawdown_series(returns).min()))


def max_drawdown_duration(returns: pd.Series) -> int:
    """Longest span in bars from a peak to its recovery (or to the last bar if not recovered)."""
    equity = _equity_with_start(_values(returns))
    at_peak = np.flatnonzero(equity >= np.maximum.accumulate(equity) * (1.0 - 1e-12))  # float-noise tolerant
    gaps = np.diff(at_peak)
    recovered = int(gaps[gaps > 1].max(initial=0))
    ongoing = equity.size - 1 - int(at_peak[-1])
    return max(recovered, ongoing)


def rolling_sharpe(returns: pd.Series, window: int, *, risk_free_rate: float = 0.0,
                   periods_per_year: int = PERIODS_PER_YEAR) -> pd.Series:
    """Annualized Sharpe over a trailing ``window`` of bars (NaN until the window is full or if flat)."""
    if window < 2:
        raise ValueError(f"rolling_sharpe window must be >= 2, got {window}")
    excess = returns.astype(np.float64) - _per_period_rate(risk_free_rate, periods_per_year)
    rolling = excess.rolling(window)
    std = rolling.std(ddof=1)
    out = rolling.mean() / std.where(std > 0) * math.sqrt(periods_per_year)
    return out.rename("rolling_sharpe")


def probabilistic_sharpe_ratio(sr: float, n_obs: int, skew: float, kurtosis: float,
                               sr_benchmark: float = 0.0) -> float:
    """P(true Sharpe > ``sr_benchmark``) given a per-bar Sharpe ``sr`` estimated on ``n_obs`` bars.

    ``kurtosis`` is Pearson's (3 for a normal); Sharpes are per bar, not annualized
    (Bailey & López de Prado 2012, eq. PSR).
    """
    if n_obs < 2:
        raise ValueError(f"PSR needs at least 2 observations, got {n_obs}")
    variance = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    diff = (sr - sr_benchmark) * math.sqrt(n_obs - 1)
    if variance <= 0.0:  # degenerate (two-point) distribution: the estimate is exact
        return float(diff > 0) if diff != 0 else 0.5
    return float(stats.norm.cdf(diff / math.sqrt(variance)))


def expected_max_sharpe(n_trials: int, trials_sharpe_std: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe estimates whose true value is 0 (the DSR benchmark SR0).

    SR0 = std * ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e))), γ the Euler–Mascheroni constant; 0 for N = 1.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1:
        return 0.0
    z1 = stats.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(trials_sharpe_std * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def sharpe_standard_error(sr: float, n_obs: int, skew: float, kurtosis: float) -> float:
    """Standard error of a per-bar Sharpe estimate under non-normal returns (Mertens / BLdP 2012)."""
    variance = max(0.0, 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2)
    return math.sqrt(variance / (n_obs - 1))


def deflated_sharpe_ratio(sr: float, n_obs: int, skew: float, kurtosis: float, n_trials: int,
                          trials_sharpe_std: float) -> float:
    """Deflated Sharpe ratio (Bailey & López de Prado 2014): PSR against the expected max of N trials.

    ``sr`` and ``trials_sharpe_std`` (std of the Sharpes across trials) are per bar, not annualized.
    """
    sr0 = expected_max_sharpe(n_trials, trials_sharpe_std)
    return probabilistic_sharpe_ratio(sr, n_obs, skew, kurtosis, sr_benchmark=sr0)


def _skew_kurtosis(values: np.ndarray) -> tuple[float, float]:
    """Biased sample skewness and Pearson kurtosis; the normal (0, 3) when they are undefined (flat data)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        skew = float(stats.skew(values))
        kurt = float(stats.kurtosis(values, fisher=False))
    if _std(values) == 0.0 or not (math.isfinite(skew) and math.isfinite(kurt)):
        return 0.0, 3.0
    return skew, kurt


def _beta_alpha(excess: pd.Series, bench_excess: pd.Series, periods_per_year: int) -> tuple[float, float]:
    joined = pd.concat([excess.rename("r"), bench_excess.rename("b")], axis=1, join="inner").dropna()
    if len(joined) < 2:
        raise ValueError("returns and benchmark share fewer than 2 dates: cannot compute beta/alpha")
    r = joined["r"].to_numpy()
    b = joined["b"].to_numpy()
    b_dev = b - b.mean()
    beta = _ratio(float(np.mean(b_dev * (r - r.mean()))), float(np.mean(b_dev**2)))
    alpha = (1.0 + float(np.mean(r - beta * b))) ** periods_per_year - 1.0
    return beta, alpha


def performance_metrics(returns: pd.Series, *, benchmark: pd.Series | None = None,
                        periods_per_year: int = PERIODS_PER_YEAR, risk_free_rate: float = 0.0,
                        n_trials: int = 1, trials_sharpe_std: float | None = None,
                        turnover: pd.Series | None = None, costs: pd.Series | None = None,
                        weights: pd.DataFrame | None = None) -> dict[str, float]:
    """All metrics of one return series as a JSON-safe ``{name: float}`` (see the module docstring).

    ``trials_sharpe_std`` is the standard deviation of the *annualized* Sharpes of the ``n_trials``
    configurations tried; when None it defaults to the standard error of this strategy's Sharpe
    estimate (annualized), i.e. the spread that trial Sharpes would show from estimation noise alone.
    ``turnover``/``costs`` are per-bar series and ``weights`` per-bar asset weights of the same backtest.
    """
    values = _values(returns)
    n = values.size
    if n < 2:
        raise ValueError(f"performance_metrics needs at least 2 returns, got {n}")
    rf = _per_period_rate(risk_free_rate, periods_per_year)
    excess = values - rf
    equity = _equity_with_start(values)
    total_return = float(equity[-1] - 1.0)
    years = n / periods_per_year
    cagr = float(equity[-1] ** (1.0 / years) - 1.0) if equity[-1] > 0 else -1.0
    mdd = max_drawdown(returns)
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    nonzero = values[values != 0.0]
    sharpe = _sharpe(excess, periods_per_year)
    sr_bar = sharpe / math.sqrt(periods_per_year)
    skew, kurt = _skew_kurtosis(excess)
    if trials_sharpe_std is None:
        trials_std_bar = sharpe_standard_error(sr_bar, n, skew, kurt)
    else:
        trials_std_bar = trials_sharpe_std / math.sqrt(periods_per_year)
    out: dict[str, float] = {
        "total_return": total_return,
        "cagr": cagr,
        "annual_volatility": _std(values) * math.sqrt(periods_per_year),
        "sharpe": sharpe,
        "sortino": _ratio(float(np.mean(excess)), downside) * math.sqrt(periods_per_year),
        "calmar": _ratio(cagr, mdd),
        "max_drawdown": mdd,
        "max_drawdown_duration": float(max_drawdown_duration(returns)),
        "hit_rate": float(np.mean(nonzero > 0)) if nonzero.size else 0.0,
        "psr": probabilistic_sharpe_ratio(sr_bar, n, skew, kurt),
        "dsr": deflated_sharpe_ratio(sr_bar, n, skew, kurt, n_trials, trials_std_bar),
    }
    if benchmark is not None:
        bench_excess = benchmark.astype(np.float64) - rf
        out["beta"], out["alpha"] = _beta_alpha(
            pd.Series(excess, index=returns.index), bench_excess, periods_per_year)
    if turnover is not None:
        out["turnover"] = float(np.mean(_values(turnover, "turnover"))) * periods_per_year
    if costs is not None:
        out["cost_drag"] = float(np.mean(_values(costs, "costs"))) * periods_per_year
    if weights is not None:
        gross = np.abs(np.asarray(weights, dtype=np.float64)).sum(axis=1)
        if not np.isfinite(gross).all():
            raise ValueError("weights contain non-finite values")
        out["exposure"] = float(np.mean(gross))
    return out


def returns_from_csv(path: Path | str) -> pd.Series:
    """Read daily returns from a CSV with a date column and one numeric column (UTC DatetimeIndex).

    The date column is the one named date/timestamp/datetime (any case), else the first column.
    Raises ValueError naming the file, column and row (1-based data row) of any bad value.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: file is empty; expected a date column and a returns column") from exc
    if frame.shape[1] != 2:
        raise ValueError(f"{path}: expected exactly 2 columns (date, returns), found {frame.shape[1]}: "
                         f"{list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{path}: no data rows")
    names = [str(c) for c in frame.columns]
    date_col = next((c for c in names if c.strip().lower() in {"date", "timestamp", "datetime"}), names[0])
    value_col = names[1] if date_col == names[0] else names[0]
    dates = pd.to_datetime(frame[date_col].str.strip(), errors="coerce", utc=True, format="mixed")
    numbers = pd.to_numeric(frame[value_col].str.strip(), errors="coerce")
    for label, column, bad in (
        ("date", date_col, dates.isna().to_numpy()),
        ("number", value_col, ~np.isfinite(numbers.to_numpy(dtype=np.float64))),
        ("simple return >= -1", value_col, (numbers < -1.0).to_numpy()),
    ):
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}: column '{column}', row {row + 1} (line {row + 2}): "
                             f"{frame[column].iloc[row]!r} is not a valid {label}")
    index = pd.DatetimeIndex(dates, name="date")
    duplicated = index.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise ValueError(f"{path}: column '{date_col}', row {row + 1} (line {row + 2}): "
                         f"duplicate date {frame[date_col].iloc[row]!r}")
    series = pd.Series(numbers.to_numpy(dtype=np.float64), index=index, name=value_col)
    return series.sort_index()
