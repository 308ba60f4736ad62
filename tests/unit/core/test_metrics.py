"""Metrics against hand computations on small known series and the published DSR example."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from tradepipe.core.metrics import (
    deflated_sharpe_ratio,
    drawdown_series,
    expected_max_sharpe,
    max_drawdown,
    max_drawdown_duration,
    performance_metrics,
    probabilistic_sharpe_ratio,
    returns_from_csv,
    rolling_sharpe,
    sharpe_ratio,
)


def series(values: list[float], start: str = "2020-01-01") -> pd.Series:
    index = pd.date_range(start, periods=len(values), freq="B", tz="UTC")
    return pd.Series(values, index=index, dtype=float)


SMALL = [0.01, -0.02, 0.03, 0.0, 0.015, -0.005]


def hand_mean_std(xs: list[float]) -> tuple[float, float]:
    mean = sum(xs) / len(xs)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def test_constant_returns() -> None:
    m = performance_metrics(series([0.001] * 252))
    assert m["total_return"] == pytest.approx(1.001**252 - 1)
    assert m["cagr"] == pytest.approx(1.001**252 - 1)  # exactly one year
    assert m["annual_volatility"] == 0.0
    # zero-denominator ratios are 0.0 by convention
    assert m["sharpe"] == m["sortino"] == m["calmar"] == 0.0
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_duration"] == 0.0
    assert m["hit_rate"] == 1.0
    json.dumps(m, allow_nan=False)


def test_cagr_uses_years_from_bar_count() -> None:
    m = performance_metrics(series([0.0005] * 504))
    assert m["cagr"] == pytest.approx(1.0005**252 - 1)
    assert m["total_return"] == pytest.approx(1.0005**504 - 1)


def test_sharpe_sortino_volatility_by_hand() -> None:
    mean, std = hand_mean_std(SMALL)
    m = performance_metrics(series(SMALL))
    assert m["sharpe"] == pytest.approx(mean / std * math.sqrt(252))
    assert m["annual_volatility"] == pytest.approx(std * math.sqrt(252))
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in SMALL) / len(SMALL))
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(252))
    assert sharpe_ratio(series(SMALL)) == pytest.approx(m["sharpe"])


def test_risk_free_rate_is_annual_and_compounded_per_bar() -> None:
    rf = (1.05) ** (1 / 252) - 1
    excess = [x - rf for x in SMALL]
    mean, std = hand_mean_std(excess)
    m = performance_metrics(series(SMALL), risk_free_rate=0.05)
    assert m["sharpe"] == pytest.approx(mean / std * math.sqrt(252))
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in excess) / len(excess))
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(252))
    assert sharpe_ratio(series(SMALL), risk_free_rate=0.05) == pytest.approx(m["sharpe"])


def test_hand_built_drawdown_with_recovery() -> None:
    # equity: 1 -> 1.1 -> 0.88 -> 1.1 (recovers exactly) -> 1.111 -> 1.09989 (still under water)
    r = series([0.1, -0.2, 0.25, 0.01, -0.01])
    assert max_drawdown(r) == pytest.approx(0.2)
    assert max_drawdown_duration(r) == 2  # peak at bar 0, regained at bar 2
    dd = drawdown_series(r)
    np.testing.assert_allclose(dd.to_numpy(), [0.0, -0.2, 0.0, 0.0, -0.01], atol=1e-12)
    m = performance_metrics(r)
    assert m["max_drawdown"] == pytest.approx(0.2)
    assert m["max_drawdown_duration"] == 2.0
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.2)
    assert m["total_return"] == pytest.approx(1.1 * 0.8 * 1.25 * 1.01 * 0.99 - 1)


def test_first_bar_loss_counts_and_unrecovered_runs_to_the_end() -> None:
    assert max_drawdown(series([-0.1, 0.0, 0.2])) == pytest.approx(0.1)
    assert max_drawdown_duration(series([-0.1, 0.0, 0.2])) == 3  # from the start value to bar 2
    r = series([0.1, -0.3, 0.1, 0.1, 0.1, 0.1])  # 1.1 -> 0.77 -> ... 1.127357 > 1.1 at bar 5
    assert max_drawdown(r) == pytest.approx(0.3)
    assert max_drawdown_duration(r) == 5
    r = series([0.05, -0.1, 0.01, 0.01])  # never recovers: peak at bar 0, 3 bars to the end
    assert max_drawdown_duration(r) == 3
    assert max_drawdown(r) == pytest.approx(0.1)


def test_hit_rate_ignores_flat_bars() -> None:
    assert performance_metrics(series([0.01, 0.0, -0.01, 0.02, 0.0]))["hit_rate"] == pytest.approx(2 / 3)
    assert performance_metrics(series([0.0, 0.0]))["hit_rate"] == 0.0


def test_beta_alpha_against_exact_linear_benchmark() -> None:
    rng = np.random.default_rng(0)
    bench = series(list(rng.normal(0.0003, 0.01, 300)))
    strat = 0.0001 + 1.5 * bench
    m = performance_metrics(strat, benchmark=bench)
    assert m["beta"] == pytest.approx(1.5)
    assert m["alpha"] == pytest.approx(1.0001**252 - 1)
    # with a risk-free rate: r - rf = (a + 0.5 rf) + 1.5 (b - rf)
    rf = 1.03 ** (1 / 252) - 1
    m = performance_metrics(strat, benchmark=bench, risk_free_rate=0.03)
    assert m["beta"] == pytest.approx(1.5)
    assert m["alpha"] == pytest.approx((1 + 0.0001 + 0.5 * rf) ** 252 - 1)


def test_benchmark_is_aligned_on_common_dates() -> None:
    bench = series([np.nan, 0.01, -0.02, 0.005, 0.01, 0.002])  # leading NaN as from pct_change
    strat = (2.0 * bench).iloc[1:]
    m = performance_metrics(strat, benchmark=bench)
    assert m["beta"] == pytest.approx(2.0)
    assert m["alpha"] == pytest.approx(0.0, abs=1e-12)


def test_turnover_costs_exposure() -> None:
    r = series([0.01, 0.0, -0.01, 0.0])
    weights = pd.DataFrame({"A": [0.5, 0.5, -0.2, 0.0], "B": [0.5, 0.2, 0.3, 0.0]}, index=r.index)
    m = performance_metrics(r, turnover=series([1.0, 0.3, 0.7, 0.0]), costs=series([0.001, 0.0, 0.0, 0.0003]),
                            weights=weights)
    assert m["turnover"] == pytest.approx(0.5 * 252)
    assert m["cost_drag"] == pytest.approx(0.0013 / 4 * 252)
    assert m["exposure"] == pytest.approx((1.0 + 0.7 + 0.5 + 0.0) / 4)
    assert "beta" not in performance_metrics(r)


def test_psr_formula_on_a_skewed_series() -> None:
    # a skewed series: many small gains, a few large losses
    values = [0.004] * 40 + [-0.03] * 4 + [0.001, -0.002]
    n = len(values)
    mean, std = hand_mean_std(values)
    sr = mean / std
    m2 = sum((x - mean) ** 2 for x in values) / n
    skew = sum((x - mean) ** 3 for x in values) / n / m2**1.5
    kurt = sum((x - mean) ** 4 for x in values) / n / m2**2
    assert skew < -2  # the series really is skewed
    expected = norm.cdf(sr * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    m = performance_metrics(series(values))
    assert m["psr"] == pytest.approx(expected)
    assert probabilistic_sharpe_ratio(sr, n, skew, kurt) == pytest.approx(expected)
    # negative skew lowers confidence relative to a normal series with the same Sharpe
    assert m["psr"] < probabilistic_sharpe_ratio(sr, n, 0.0, 3.0)


def test_psr_against_benchmark_and_normal_case() -> None:
    sr, n = 0.1, 500
    expected = norm.cdf((sr - 0.05) * math.sqrt(n - 1) / math.sqrt(1 + 0.5 * sr**2))
    assert probabilistic_sharpe_ratio(sr, n, 0.0, 3.0, sr_benchmark=0.05) == pytest.approx(expected)
    assert probabilistic_sharpe_ratio(0.0, n, 0.0, 3.0) == pytest.approx(0.5)


def test_dsr_published_example() -> None:
    # Bailey & López de Prado (2014), numerical example: annualized SR 2.5 on T = 1250 daily bars,
    # skew -3, kurtosis 10, N = 100 trials with variance of annualized trial Sharpes 1/2, 250 days a year.
    # The paper reports E[max SR] ~ 0.1132 (per day) and DSR ~ 0.9004.
    sr = 2.5 / math.sqrt(250)
    trials_std = math.sqrt(0.5 / 250)
    gamma = 0.5772156649015329
    sr0 = trials_std * ((1 - gamma) * norm.ppf(1 - 1 / 100) + gamma * norm.ppf(1 - 1 / (100 * math.e)))
    assert expected_max_sharpe(100, trials_std) == pytest.approx(sr0)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    expected = norm.cdf((sr - sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * sr + 9 / 4 * sr**2))
    dsr = deflated_sharpe_ratio(sr, 1250, -3.0, 10.0, 100, trials_std)
    assert dsr == pytest.approx(expected)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_dsr_in_performance_metrics() -> None:
    rng = np.random.default_rng(1)
    r = series(list(rng.normal(0.001, 0.01, 750)))
    single = performance_metrics(r)
    assert single["dsr"] == pytest.approx(single["psr"])  # one trial: no deflation
    many = performance_metrics(r, n_trials=50, trials_sharpe_std=0.5)
    sr = many["sharpe"] / math.sqrt(252)
    values = r.to_numpy()
    dev = values - values.mean()
    skew = float((dev**3).mean() / (dev**2).mean() ** 1.5)
    kurt = float((dev**4).mean() / (dev**2).mean() ** 2)
    expected = deflated_sharpe_ratio(sr, 750, skew, kurt, 50, 0.5 / math.sqrt(252))
    assert many["dsr"] == pytest.approx(expected)
    assert many["dsr"] < single["dsr"]
    # default trial spread: the standard error of this Sharpe estimate
    default = performance_metrics(r, n_trials=50)
    se = math.sqrt((1 - skew * sr + (kurt - 1) / 4 * sr**2) / 749)
    assert default["dsr"] == pytest.approx(deflated_sharpe_ratio(sr, 750, skew, kurt, 50, se))


def test_rolling_sharpe_matches_hand_window() -> None:
    r = series(SMALL)
    rs = rolling_sharpe(r, 4)
    assert rs.iloc[:3].isna().all()
    mean, std = hand_mean_std(SMALL[2:6])
    assert rs.iloc[5] == pytest.approx(mean / std * math.sqrt(252))
    assert rolling_sharpe(series([0.001] * 5), 3).isna().all()  # flat windows: undefined, NaN


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        performance_metrics(series([0.01, np.nan, 0.02]))
    with pytest.raises(ValueError, match="at least 2"):
        performance_metrics(series([0.01]))
    with pytest.raises(ValueError, match="window"):
        rolling_sharpe(series(SMALL), 1)


def test_json_safe_on_degenerate_series() -> None:
    for values in ([0.0] * 10, [-0.01] * 10, [0.02, -0.02] * 5, [-1.0, 0.0]):
        m = performance_metrics(series(values), n_trials=10, benchmark=series([0.0] * len(values)))
        json.dumps(m, allow_nan=False)
        assert all(isinstance(v, float) for v in m.values())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=2, max_size=60))
def test_properties(values: list[float]) -> None:
    r = series(values)
    m = performance_metrics(r, n_trials=5)
    json.dumps(m, allow_nan=False)
    assert 0.0 <= m["max_drawdown"] < 1.0
    assert 0 <= m["max_drawdown_duration"] <= len(values)
    assert 0.0 <= m["dsr"] <= m["psr"] <= 1.0
    assert m["max_drawdown"] == pytest.approx(-min(0.0, drawdown_series(r).min()))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "returns.csv"
    path.write_text(text)
    return path


def test_returns_from_csv_reads_and_sorts(tmp_path: Path) -> None:
    path = write(tmp_path, "date,strategy\n2020-01-03,0.01\n2020-01-02,-0.02\n2020-01-06,0.005\n")
    r = returns_from_csv(path)
    assert r.name == "strategy"
    assert list(r.to_numpy()) == [-0.02, 0.01, 0.005]
    assert str(r.index.tz) == "UTC"
    assert r.index[0] == pd.Timestamp("2020-01-02", tz="UTC")


def test_returns_from_csv_date_column_found_by_name(tmp_path: Path) -> None:
    r = returns_from_csv(write(tmp_path, "ret,Timestamp\n0.01,2021-05-03\n0.02,2021-05-04\n"))
    assert list(r.to_numpy()) == [0.01, 0.02] and r.name == "ret"


@pytest.mark.parametrize(("text", "message"), [
    ("", "file is empty"),
    ("date,a,b\n2020-01-01,1,2\n", "exactly 2 columns"),
    ("date,r\n", "no data rows"),
    ("date,r\n2020-01-01,0.01\nnot-a-date,0.02\n", r"column 'date', row 2 \(line 3\).*'not-a-date'.*date"),
    ("date,r\n2020-01-01,0.01\n2020-01-02,abc\n", r"column 'r', row 2 \(line 3\).*'abc'.*number"),
    ("date,r\n2020-01-01,0.01\n2020-01-02,\n", r"column 'r', row 2 .*number"),
    ("date,r\n2020-01-01,-1.5\n", r"column 'r', row 1 .*simple return"),
    ("date,r\n2020-01-01,0.01\n2020-01-01,0.02\n", r"column 'date', row 2 .*duplicate"),
])
def test_returns_from_csv_errors_name_file_column_row(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as info:
        returns_from_csv(path)
    assert str(path) in str(info.value)
