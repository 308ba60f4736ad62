"""Causal market-risk series from a returns panel: value at row t uses rows up to t only (numpy, batched)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def rolling_moments(returns: npt.ArrayLike, window: int, min_periods: int) -> tuple[Array, Array]:
    """Mean (T, N) and sample covariance (T, N, N) of rows ``max(0, t - window + 1) .. t`` for every t.

    Rows with fewer than ``min_periods`` observations are NaN. Computed from cumulative sums in one pass.
    """
    r = np.asarray(returns, dtype=np.float64)
    n_bars = len(r)
    s1 = np.concatenate([np.zeros((1, r.shape[1])), np.cumsum(r, axis=0)])
    s2 = np.concatenate([np.zeros((1, r.shape[1], r.shape[1])), np.cumsum(r[:, :, None] * r[:, None, :], axis=0)])
    stop = np.arange(1, n_bars + 1)
    start = np.maximum(stop - window, 0)
    count = (stop - start).astype(np.float64)
    total = s1[stop] - s1[start]
    mean = total / count[:, None]
    cov = (s2[stop] - s2[start] - total[:, :, None] * mean[:, None, :]) / np.maximum(count - 1.0, 1.0)[:, None, None]
    short = count < max(min_periods, 2)
    mean[short] = np.nan
    cov[short] = np.nan
    return mean, cov


def turbulence(returns: npt.ArrayLike, window: int, min_periods: int) -> Array:
    """Kritzman-Li turbulence: ``(r_t - mu)' pinv(S) (r_t - mu)`` with mu, S of the ``window`` rows before t.

    NaN until ``min_periods`` earlier rows exist. The pseudo-inverse copes with assets of zero variance.
    """
    r = np.asarray(returns, dtype=np.float64)
    mean, cov = rolling_moments(r, window, min_periods)
    out = np.full(len(r), np.nan)
    ok = np.flatnonzero(~np.isnan(mean[:-1, 0])) + 1  # moments of rows up to t - 1 exist
    if ok.size:
        gap = r[ok] - mean[ok - 1]
        out[ok] = np.einsum("ti,tij,tj->t", gap, np.linalg.pinv(cov[ok - 1], hermitian=True), gap)
    return out


def trailing_quantile(values: npt.ArrayLike, window: int, q: float, min_periods: int) -> Array:
    """Quantile ``q`` of the non-NaN values among the ``window`` entries before t (t excluded); NaN if too few."""
    x = np.asarray(values, dtype=np.float64)
    padded = np.concatenate([np.full(window, np.nan), x])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)[: len(x)]
    count = np.count_nonzero(~np.isnan(windows), axis=1)
    out = np.full(len(x), np.nan)
    ok = count >= min_periods
    if ok.any():
        out[ok] = np.nanquantile(windows[ok], q, axis=1)
    return out
