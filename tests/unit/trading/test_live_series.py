"""The kept risk series of a live market (``risk.series.WindowSums``, ``trailing_quantile_at``) equal the full series
bit for bit at every row, across block boundaries, with NaN and huge rows in the data."""

from __future__ import annotations

import numpy as np
import pytest

from tradepipe.risk.series import (
    WindowSums,
    moments_at,
    rolling_moments,
    trailing_quantile,
    trailing_quantile_at,
    turbulence,
)


@pytest.mark.parametrize(("window", "start"), [(5, 1), (5, 7), (7, 14), (4, 30)])
def test_kept_window_sums_give_the_full_moments_and_turbulence_bit_for_bit(window: int, start: int) -> None:
    rng = np.random.default_rng(window * 100 + start)
    returns = rng.normal(0.0, 0.02, (40, 3))
    returns[22, 1] = 1e200                                  # overflowing squares: undefined moments nearby
    mean, cov = rolling_moments(returns, window, 3)
    series = turbulence(returns, window, 3)
    sums = WindowSums(returns[:start], window, 3)
    for t in range(start, len(returns)):
        np.testing.assert_array_equal(sums.turbulence(returns[t]), series[t])
        sums.append(returns[t].copy())
        m, c = sums.moments()
        np.testing.assert_array_equal(m, mean[t])
        np.testing.assert_array_equal(c, cov[t])
        np.testing.assert_array_equal(m, moments_at(returns, window, 3, t)[0])


def test_the_trailing_quantile_of_the_last_row_alone_equals_the_full_series() -> None:
    rng = np.random.default_rng(5)
    values = rng.gamma(2.0, 1.0, 60)
    values[[3, 17, 18]] = np.nan
    values[40] = np.inf
    full = trailing_quantile(values, 10, 0.9, 4)
    for t in range(len(values)):
        np.testing.assert_array_equal(trailing_quantile_at(values, 10, 0.9, 4, t), full[t])


def test_a_copy_of_kept_window_sums_grows_apart_from_its_original() -> None:
    rng = np.random.default_rng(5)
    ours, theirs = rng.normal(0.0, 0.02, (30, 3)), rng.normal(0.0, 0.02, (30, 3))
    theirs[:12] = ours[:12]                                 # one history, then two futures
    original = WindowSums(ours[:12], 5, 3)
    twin = original.copy()
    for t in range(12, 30):                                 # across block boundaries (every 5 rows)
        original.append(ours[t].copy())
        twin.append(theirs[t].copy())
        np.testing.assert_array_equal(original.moments()[1], moments_at(ours, 5, 3, t)[1])
        np.testing.assert_array_equal(twin.moments()[1], moments_at(theirs, 5, 3, t)[1])
