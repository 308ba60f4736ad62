"""Features and labels as a dense (symbol, time, feature) panel, chronological splits and window sampling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tradepipe.core.scaler import Scaler
from tradepipe.core.types import F32, I64


@dataclass(frozen=True)
class Panel:
    """Dense arrays on a common calendar; NaN where a symbol has no value."""

    timestamps: pd.DatetimeIndex
    symbols: list[str]
    features: F32          # (N, T, F)
    labels: F32            # (N, T); all NaN when built without labels


def make_panel(features: pd.DataFrame, columns: list[str], labels: pd.DataFrame | None = None) -> Panel:
    """Pivot long feature (and label) tables into a Panel."""
    timestamps = pd.DatetimeIndex(sorted(features["timestamp"].unique()))
    symbols = sorted(features["symbol"].unique())
    index = pd.MultiIndex.from_product([symbols, timestamps], names=["symbol", "timestamp"])
    feats = features.set_index(["symbol", "timestamp"])[columns].reindex(index)
    arr = feats.to_numpy(dtype=np.float32).reshape(len(symbols), len(timestamps), len(columns))
    lab = np.full((len(symbols), len(timestamps)), np.nan, dtype=np.float32)
    if labels is not None:
        label_col = [c for c in labels.columns if c not in ("timestamp", "symbol")][0]
        lab = (labels.set_index(["symbol", "timestamp"])[label_col].reindex(index)
               .to_numpy(dtype=np.float32).reshape(len(symbols), len(timestamps)))
    return Panel(timestamps, symbols, arr, lab)


@dataclass(frozen=True)
class Split:
    """Time positions (inclusive start, exclusive stop) of the train, validation and test windows.

    Training labels end on the last training bar (a purge gap of ``horizon`` bars before validation), and
    likewise for validation before test; ``embargo`` extra bars are skipped after each boundary.
    """

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]


def chronological_split(timestamps: pd.DatetimeIndex, train_end: str, val_end: str, horizon: int,
                        embargo: int = 0) -> Split:
    """Split positions by date with a purge gap of ``horizon`` bars and an embargo."""
    i_train = int(timestamps.searchsorted(pd.Timestamp(train_end, tz="UTC"), side="right"))
    i_val = int(timestamps.searchsorted(pd.Timestamp(val_end, tz="UTC"), side="right"))
    split = Split(train=(0, i_train - horizon), val=(i_train + embargo, i_val - horizon),
                  test=(i_val + embargo, len(timestamps)))
    for name, (lo, hi) in vars(split).items():
        if hi - lo < 2:
            raise ValueError(f"the {name} window holds {max(hi - lo, 0)} bars; move split dates or data range")
    return split


class Windows:
    """Samples (symbol, t): the scaled feature window ending at t (inclusive) and the label at t."""

    def __init__(self, scaled: F32, labels: F32, seq_len: int, span: tuple[int, int], need_label: bool = True):
        self.seq_len = seq_len
        self.labels = labels
        n_sym, n_time, _ = scaled.shape
        # view of shape (N, T - L + 1, F, L): window k covers times k .. k + L - 1
        self.view = sliding_window_view(scaled, seq_len, axis=1)
        valid_window = ~np.isnan(self.view).any(axis=(2, 3))
        ok = np.zeros((n_sym, n_time), dtype=bool)
        ok[:, seq_len - 1:] = valid_window
        lo, hi = max(span[0], seq_len - 1), span[1]
        mask = np.zeros_like(ok)
        mask[:, lo:hi] = True
        mask &= ok
        if need_label:
            mask &= ~np.isnan(labels)
        sym, t = np.nonzero(mask)
        order = np.lexsort((sym, t))          # chronological, then by symbol
        self.sym: I64 = sym[order].astype(np.int64)
        self.t: I64 = t[order].astype(np.int64)

    def __len__(self) -> int:
        return len(self.t)

    def batch(self, idx: I64) -> tuple[F32, F32]:
        """Inputs (B, F, L) and labels (B,) for sample indices ``idx``."""
        sym, t = self.sym[idx], self.t[idx]
        x = self.view[sym, t - self.seq_len + 1]
        return np.ascontiguousarray(x, dtype=np.float32), self.labels[sym, t]

    def last_per_symbol(self) -> Windows:
        """Keep each symbol's most recent sample (what a live forecast needs)."""
        _, from_end = np.unique(self.sym[::-1], return_index=True)
        keep = np.sort(len(self.sym) - 1 - from_end)
        self.sym, self.t = self.sym[keep], self.t[keep]
        return self

    def newest(self, n: int) -> Windows:
        """Keep only the ``n`` most recent samples (bounds CPU time on long histories)."""
        if n < len(self):
            self.sym, self.t = self.sym[-n:], self.t[-n:]
        return self


@dataclass(frozen=True)
class Prepared:
    """A panel split chronologically, with its training-window scaler applied."""

    panel: Panel
    split: Split
    scaler: Scaler
    scaled: F32
    y_scale: float


def prepare(panel: Panel, train_end: str, val_end: str, horizon: int, embargo: int = 0) -> Prepared:
    """Split ``panel`` with a purge gap of ``horizon`` (plus ``embargo``); fit the scaler on the training window."""
    split = chronological_split(panel.timestamps, train_end, val_end, horizon, embargo)
    scaler = Scaler.fit(panel.features, split.train[1])
    y_scale = float(np.nanstd(panel.labels[:, : split.train[1]]))
    return Prepared(panel, split, scaler, scaler.transform(panel.features), y_scale or 1.0)
