"""Causal market-risk series from a returns panel: value at row t uses rows up to t only (numpy, batched).

Robust to extreme inputs (e.g. a price of 1e300 on some bars): window sums are built without subtracting
running totals, so a huge or non-finite row affects only the windows that contain it; moments of such a
window are NaN (undefined: no vol scaling, not turbulent), never an exception.
"""

from __future__ import annotations

import copy

import numpy as np
import numpy.typing as npt

from tradepipe.core.types import Array


def window_sums(x: npt.ArrayLike, window: int) -> Array:
    """Sums over axis 0 of rows ``max(0, t - window + 1) .. t`` for every t; ``x`` is (T, ...).

    Rows are cut into blocks of ``window``: a window lies in one block (then it starts the block) or spans
    two consecutive ones, so its sum is a within-block suffix sum plus a within-block prefix sum.
    """
    a = np.asarray(x, dtype=np.float64)
    n_bars, tail = len(a), a.shape[1:]
    n_blocks = -(-n_bars // window)
    blocks = np.zeros((n_blocks, window, *tail))
    blocks.reshape(-1, *tail)[:n_bars] = a
    with np.errstate(over="ignore", invalid="ignore"):
        prefix = np.cumsum(blocks, axis=1).reshape(-1, *tail)[:n_bars]
        suffix = np.cumsum(blocks[:, ::-1], axis=1)[:, ::-1].reshape(-1, *tail)[:n_bars]
        t = np.arange(n_bars)
        start = np.maximum(t - window + 1, 0)
        spans = start // window != t // window  # two blocks: rows start .. block end, then block start .. t
        out = prefix.copy()
        out[spans] += suffix[start[spans]]
    return out


def rolling_moments(returns: npt.ArrayLike, window: int, min_periods: int) -> tuple[Array, Array]:
    """Mean (T, N) and sample covariance (T, N, N) of rows ``max(0, t - window + 1) .. t`` for every t.

    NaN where fewer than ``min_periods`` rows exist, or where the window's moments are not finite (a
    non-finite or overflowing value in it).
    """
    r = np.asarray(returns, dtype=np.float64)
    count = np.minimum(np.arange(1, len(r) + 1), window).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        total = window_sums(r, window)
        squares = window_sums(r[:, :, None] * r[:, None, :], window)
        mean = total / count[:, None]
        cov = (squares - total[:, :, None] * mean[:, None, :]) / np.maximum(count - 1.0, 1.0)[:, None, None]
    undefined = ((count < max(min_periods, 2)) | ~np.isfinite(mean).all(axis=1)
                 | ~np.isfinite(cov).all(axis=(1, 2)))
    mean[undefined] = np.nan
    cov[undefined] = np.nan
    return mean, cov


def turbulence(returns: npt.ArrayLike, window: int, min_periods: int, since: int = 0) -> Array:
    """Kritzman-Li turbulence: ``(r_t - mu)' pinv(S) (r_t - mu)`` with mu, S of the ``window`` rows before t.

    NaN (never turbulent) until ``min_periods`` earlier rows exist, while those rows' moments are undefined
    (see ``rolling_moments``) or when ``r_t`` is not finite; ``inf`` when a finite move is too large to
    measure. The pseudo-inverse copes with singular S (e.g. assets of zero variance); S is divided by its
    largest entry first, so its eigendecomposition never sees huge values. Only rows ``t >= since`` are
    computed (NaN before), each exactly as in the full series.
    """
    r = np.asarray(returns, dtype=np.float64)
    mean, cov = rolling_moments(r, window, min_periods)
    out = np.full(len(r), np.nan)
    ok = np.flatnonzero(~np.isnan(mean[:-1, 0])) + 1  # moments of rows up to t - 1 exist
    ok = ok[np.isfinite(r[ok]).all(axis=1) & (ok >= since)]
    if ok.size:
        out[ok] = _distance(r[ok], mean[ok - 1], cov[ok - 1])
    return out


def _distance(r: Array, mean: Array, cov: Array) -> Array:
    """Turbulence (B,) of rows ``r`` (B, N) from moments (B, N), (B, N, N) (see :func:`turbulence`)."""
    size = np.abs(cov).max(axis=(1, 2))
    size = np.where(size > 0.0, size, 1.0)
    gap = r - mean
    with np.errstate(over="ignore", invalid="ignore"):
        quad = np.einsum("ti,tij,tj->t", gap, np.linalg.pinv(cov / size[:, None, None], hermitian=True), gap)
        return np.asarray(np.where(np.isnan(quad), np.inf, quad) / size)


def moments_at(returns: npt.ArrayLike, window: int, min_periods: int, t: int) -> tuple[Array, Array]:
    """Row ``t`` of :func:`rolling_moments` (mean (N,), covariance (N, N)), bit for bit, from at most ``window``
    rows: the sums add the same rows in the same order as :func:`window_sums` (a prefix of t's block, then the
    suffix of the block before)."""
    r = np.asarray(returns, dtype=np.float64)
    block, start = t // window * window, max(t - window + 1, 0)
    rows = r[start:t + 1]
    squares = rows[:, :, None] * rows[:, None, :]
    n = block - start if start < block else 0
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.cumsum(rows[n:], axis=0)[-1]
        square = np.cumsum(squares[n:], axis=0)[-1]
        if n:
            total = total + np.cumsum(rows[:n][::-1], axis=0)[-1]
            square = square + np.cumsum(squares[:n][::-1], axis=0)[-1]
    return _moments(total, square, t, window, min_periods)


def _moments(total: Array, square: Array, t: int, window: int, min_periods: int) -> tuple[Array, Array]:
    """Mean and covariance of the window ending at row ``t`` from its sums (NaN when undefined)."""
    with np.errstate(over="ignore", invalid="ignore"):
        count = float(min(t + 1, window))
        mean = total / count
        cov = (square - total[:, None] * mean[None, :]) / max(count - 1.0, 1.0)
    if count < max(min_periods, 2) or not (np.isfinite(mean).all() and np.isfinite(cov).all()):
        mean, cov = np.full_like(mean, np.nan), np.full_like(cov, np.nan)
    return mean, cov


def turbulence_at(returns: npt.ArrayLike, window: int, min_periods: int, t: int) -> float:
    """Row ``t`` of :func:`turbulence`, bit for bit (what a live step appends to the series)."""
    r = np.asarray(returns, dtype=np.float64)
    if t < 1 or not np.isfinite(r[t]).all():
        return float("nan")
    return _turbulence(r[t], *moments_at(r, window, min_periods, t - 1))


def _turbulence(row: Array, mean: Array, cov: Array) -> float:
    if np.isnan(mean[0]):
        return float("nan")
    return float(_distance(row[None], mean[None], cov[None])[0])


class WindowSums:
    """The sums :func:`moments_at` forms for the newest row, kept as rows arrive: O(N^2) a row, not O(window N^2).

    The same additions in the same order, so bit for bit the same moments: a running sum over the newest row's
    block of ``window`` rows (a cumulative sum, row after row) and, for the block before, the sums from its end back
    to each of its rows (computed once, when the block is complete). ``rows`` are the rows so far (T, N).
    """

    def __init__(self, rows: npt.ArrayLike, window: int, min_periods: int) -> None:
        r = np.asarray(rows, dtype=np.float64)
        self.window, self.min_periods = window, min_periods
        self.t = len(r) - 1                       # the newest row
        block = max(self.t, 0) // window * window
        self._block = [row for row in r[block:]]  # the newest block's rows so far
        self._suffix: tuple[Array, Array] | None = None
        if block:
            self._suffix = _suffix_sums(r[block - window:block])
        with np.errstate(over="ignore", invalid="ignore"):
            current = r[block:]
            self._total = np.cumsum(current, axis=0)[-1] if len(current) else np.zeros(r.shape[1])
            self._square = np.cumsum(current[:, :, None] * current[:, None, :], axis=0)[-1] if len(current) \
                else np.zeros((r.shape[1], r.shape[1]))

    def copy(self) -> WindowSums:
        """An independent copy: appending to one leaves the other as it is (``append`` replaces the sums, never
        writes into them, so only the list of the block's rows is copied)."""
        twin = copy.copy(self)
        twin._block = list(self._block)
        return twin

    def append(self, row: Array) -> None:
        """Add the next row (N,)."""
        self.t += 1
        with np.errstate(over="ignore", invalid="ignore"):
            square = row[:, None] * row[None, :]
        if self.t % self.window == 0:             # a new block starts: the finished one gives the suffix sums
            self._suffix = _suffix_sums(np.asarray(self._block))
            self._block = [row]
            self._total, self._square = row.copy(), square
            return
        self._block.append(row)
        with np.errstate(over="ignore", invalid="ignore"):
            self._total = self._total + row
            self._square = self._square + square

    def moments(self) -> tuple[Array, Array]:
        """``moments_at(rows, window, min_periods, t)`` for the newest row t, bit for bit."""
        t, window = self.t, self.window
        block, start = t // window * window, max(t - window + 1, 0)
        total, square = self._total, self._square
        if start < block:
            assert self._suffix is not None
            j = start - (block - window)
            with np.errstate(over="ignore", invalid="ignore"):
                total, square = total + self._suffix[0][j], square + self._suffix[1][j]
        return _moments(total, square, t, window, self.min_periods)

    def turbulence(self, row: Array) -> float:
        """``turbulence_at`` of ``row`` as the row after the newest (from the moments up to the newest)."""
        if self.t + 1 < 1 or not np.isfinite(row).all():
            return float("nan")
        return _turbulence(row, *self.moments())


def _suffix_sums(block: Array) -> tuple[Array, Array]:
    """For each row j of a complete block, the sums of rows j .. end added from the end back (rows, squares)."""
    with np.errstate(over="ignore", invalid="ignore"):
        squares = block[:, :, None] * block[:, None, :]
        return np.cumsum(block[::-1], axis=0)[::-1], np.cumsum(squares[::-1], axis=0)[::-1]


def trailing_quantile(values: npt.ArrayLike, window: int, q: float, min_periods: int, since: int = 0) -> Array:
    """Quantile ``q`` of the non-NaN values among the ``window`` entries before t (t excluded); NaN if too few.

    Only rows ``t >= since`` are computed (NaN before): a live decision needs the last row alone.
    """
    x = np.asarray(values, dtype=np.float64)
    padded = np.concatenate([np.full(window, np.nan), x])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)[: len(x)]
    count = np.count_nonzero(~np.isnan(windows), axis=1)
    out = np.full(len(x), np.nan)
    ok = (count >= min_periods) & (np.arange(len(x)) >= since)
    if ok.any():
        with np.errstate(invalid="ignore"):  # an inf among the values may make the quantile NaN: no threshold
            out[ok] = np.nanquantile(windows[ok], q, axis=1)
    return out


def trailing_quantile_at(values: npt.ArrayLike, window: int, q: float, min_periods: int, t: int) -> float:
    """Row ``t`` of :func:`trailing_quantile` from the ``window`` values before it alone, bit for bit."""
    x = np.asarray(values, dtype=np.float64)[max(t - window, 0):t]
    if np.count_nonzero(~np.isnan(x)) < min_periods:
        return float("nan")
    with np.errstate(invalid="ignore"):
        return float(np.nanquantile(x, q))
