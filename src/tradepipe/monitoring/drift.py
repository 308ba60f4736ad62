"""Feature drift between a reference (training) sample and a recent one: PSI and the two-sample KS statistic."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

ArrayLike = npt.ArrayLike
EPS = 1e-6  # floor of a bin's share, so an empty bin does not make PSI infinite


def _finite(values: ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def psi(reference: ArrayLike, recent: ArrayLike, bins: int = 10) -> float:
    """Population stability index of ``recent`` against ``reference``.

    Bins are the reference's quantiles (``bins`` of them, open-ended at both sides);
    PSI = sum over bins of (recent share - reference share) * ln(recent share / reference share).
    """
    ref, cur = _finite(reference), _finite(recent)
    if ref.size == 0 or cur.size == 0:
        raise ValueError("psi needs at least one finite value in each sample")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1))[1:-1])
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1) / ref.size
    cur_share = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1) / cur.size
    ref_share, cur_share = np.maximum(ref_share, EPS), np.maximum(cur_share, EPS)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def ks_statistic(reference: ArrayLike, recent: ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    ref, cur = np.sort(_finite(reference)), np.sort(_finite(recent))
    if ref.size == 0 or cur.size == 0:
        raise ValueError("ks_statistic needs at least one finite value in each sample")
    grid = np.concatenate([ref, cur])
    cdf_ref = np.searchsorted(ref, grid, side="right") / ref.size
    cdf_cur = np.searchsorted(cur, grid, side="right") / cur.size
    return float(np.max(np.abs(cdf_ref - cdf_cur)))


def feature_drift(reference: pd.DataFrame, recent: pd.DataFrame, columns: list[str], bins: int = 10
                  ) -> pd.DataFrame:
    """PSI and KS per feature column (rows: features; columns: psi, ks)."""
    rows = {col: {"psi": psi(reference[col], recent[col], bins), "ks": ks_statistic(reference[col], recent[col])}
            for col in columns}
    return pd.DataFrame.from_dict(rows, orient="index")
