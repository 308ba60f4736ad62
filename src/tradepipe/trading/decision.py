"""The champion's decision at one bar: market arrays from the account's data, its real book, its risk state.

Each value is the one a backtest over the bars from the account's ``anchor`` to the bar computes at that bar (every
transform is causal and sequential from the anchor). Two ways to get there, equal to the last bit (tested):

- :func:`market_until`: features, forecast and risk series recomputed over the whole window (the reference).
- :class:`LiveMarket`: the per-account state a trader keeps between bars. A new bar appends one row to the price
  arrays; the newest feature row comes from the same TA-Lib and rolling-variance calls on those arrays (their last
  values, :func:`tradepipe.features.live.newest_features`); the forecast reads the last ``seq_len`` feature rows; the
  risk series (price index, covariance, turbulence and its trailing threshold) grow by one row. Its ``market`` is the
  last rows of the reference Market, its ``risk`` manager rules on the newest of them. States of one anchor, policy
  and bars share their :class:`BarRows`: a bar's feature row, forecast and turbulence are computed by the first of them
  to reach it, whatever bar the others are at.

:func:`decide` is the one place the observation is formed and the policy and risk manager are called.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from tradepipe.agents.policy import TradingPolicy, agent_actor
from tradepipe.core.market import Market
from tradepipe.core.types import Array, Bools
from tradepipe.features import build_features
from tradepipe.features.indicators import Prices
from tradepipe.features.live import newest_features
from tradepipe.models.training import to_forecast
from tradepipe.risk.manager import RiskManager, RiskState
from tradepipe.risk.series import WindowSums, trailing_quantile_at, turbulence

__all__ = ["BarRows", "Decided", "LiveMarket", "Rows", "decide", "market_until", "state_from_json", "state_to_json"]

PRICE_COLUMNS = ("close", "open", "high", "low", "volume")


@dataclass(frozen=True)
class Decided:
    """The policy's proposed book and the risk-managed target (N asset weights, then cash), and the state after."""

    proposed: Array
    target: Array
    state: RiskState


def market_until(policy: TradingPolicy, bars: pd.DataFrame) -> Market:
    """Market arrays over ``bars`` (the account's anchor to the decision bar), with the newest bar's forecast."""
    features = build_features(bars, policy.predictor.features)
    recent = features["timestamp"].isin(features["timestamp"].drop_duplicates().nlargest(policy.predictor.seq_len))
    forecast = policy.predictor.predict_features(features[recent], latest_only=True)  # needs seq_len rows only
    return policy.market_from_tables(bars, features, forecast)


def decide(policy: TradingPolicy, market: Market, book: Array, equity: float, state: RiskState,
           risk: RiskManager | None = None) -> Decided:
    """Decide at the last bar of ``market`` holding ``book`` (N + 1 weights), at ``equity`` (1.0 at opening).

    ``risk``: the risk manager over ``market``'s rows (default: computed from ``market.returns``).
    """
    t = len(market.timestamps) - 1
    observation = policy.spec.observe(market, t, np.asarray(book, dtype=np.float64))
    proposed = agent_actor(policy.agents, policy.blend, policy.spec)(observation[None])
    risk = policy.spec.risk_manager(market, since=t) if risk is None else risk
    target = risk.apply(state, proposed, np.array([t]), np.array([equity]))
    return Decided(proposed[0], target[0], state)


class _Rows:
    """A growable (capacity-doubling) array of rows: ``rows[:n]`` holds the rows appended so far."""

    def __init__(self, first: np.ndarray) -> None:
        self.n = len(first)
        self.rows = np.empty((max(2 * self.n, 64), *first.shape[1:]), dtype=first.dtype)
        self.rows[:self.n] = first

    def append(self, row: np.ndarray) -> None:
        if self.n == len(self.rows):
            self.rows = np.concatenate([self.rows, np.empty_like(self.rows)])
        self.rows[self.n] = row
        self.n += 1

    @property
    def values(self) -> np.ndarray:
        return self.rows[:self.n]

    def copy(self) -> _Rows:
        twin = copy.copy(self)
        twin.rows = self.rows.copy()
        return twin


Rows = tuple[Array, np.ndarray, np.ndarray, float]  # a bar's raw feature row, scaled row, forecasts, turbulence


class BarRows:
    """What advancing to a bar computes from the prices up to it alone (:data:`Rows`), for the newest ``capacity``
    bars: shared by the market states of one anchor, policy and bars, whose prices up to each bar are the same.

    Rows another process computes can be promised (``promise``): asked for first, the promised bar's rows are waited
    for (``receive`` puts them, or gives up: then the state computes them itself)."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._rows: dict[pd.Timestamp, Rows] = {}
        self._promised: dict[pd.Timestamp, Callable[[], None]] = {}

    def get(self, bar: pd.Timestamp) -> Rows | None:
        """The rows of ``bar`` (waited for when promised and not here yet; None: not computed)."""
        receive = self._promised.pop(bar, None)
        if receive is not None and bar not in self._rows:
            receive()
        return self._rows.get(bar)

    def put(self, bar: pd.Timestamp, rows: Rows | None) -> None:
        """Keep the rows of ``bar`` (None: the promised rows will not come); a promise of them is settled."""
        self._promised.pop(bar, None)
        if rows is None:
            return
        self._rows[bar] = rows
        if len(self._rows) > self.capacity:
            del self._rows[next(iter(self._rows))]  # the oldest put

    def promise(self, bar: pd.Timestamp, receive: Callable[[], None]) -> None:
        """The rows of ``bar`` are on their way: ``receive`` blocks until they are put (or the promise is dropped)."""
        self._promised[bar] = receive


class LiveMarket:
    """One account's market state from its anchor, advanced bar by bar (see the module doc).

    ``prices`` maps each canonical price column the bars carry to a (T, N) array (NaN where a symbol has no bar,
    ``present`` False), N the policy's symbols in order, T the calendar from the anchor to the newest bar.
    ``shared``: the bar rows of the other states of this anchor, policy and bars (copies share them too).
    """

    def __init__(self, policy: TradingPolicy, bars: pd.DataFrame, timestamps: pd.DatetimeIndex,
                 prices: dict[str, Array], present: Bools, shared: BarRows | None = None) -> None:
        """The state at the last of ``timestamps``; ``bars`` are the same bars in canonical long form."""
        self.policy = policy
        self.shared = BarRows() if shared is None else shared
        recipe = policy.predictor.features
        if recipe.sentiment.path:
            raise ValueError("LiveMarket does not read headlines: decide with market_until")
        reference = market_until(policy, bars)
        if reference.symbols != policy.spec.symbols:
            raise ValueError(f"the policy trades {policy.spec.symbols}; the data holds {reference.symbols}")
        self.keep = max(policy.predictor.seq_len, policy.spec.lookback + 1)
        table = build_features(bars, recipe).set_index(["timestamp", "symbol"])
        recent = pd.MultiIndex.from_product([timestamps[-self.keep:], reference.symbols])
        raw = table.reindex(recent).to_numpy(dtype=np.float64)
        self.raw = raw.reshape(-1, len(reference.symbols), raw.shape[-1])        # newest feature rows (K, N, F)
        self.timestamps = list(timestamps)
        self.columns = [c for c in PRICE_COLUMNS if c in prices and (c == "close" or recipe.ohlcv)]
        self.prices = {c: _Rows(prices[c]) for c in self.columns}
        self.present = _Rows(present)
        self.returns = _Rows(np.nan_to_num(reference.returns))
        self.index = _Rows(np.cumprod(1.0 + self.returns.values, axis=0, dtype=np.float64))
        p = policy.spec.risk
        t = len(timestamps) - 1
        self.turbulence = _Rows(turbulence(self.returns.values, p.turbulence_window, p.min_periods,
                                           max(0, t - p.turbulence_window)))
        # the window sums of the turbulence and volatility moments, kept (O(N^2) a bar)
        self._turbulence_sums = WindowSums(self.returns.values, p.turbulence_window, p.min_periods)
        self._vol_sums = WindowSums(self.returns.values, p.vol_window, p.min_periods)
        self.predictions = reference.predictions[-self.keep:].copy()
        self.features = reference.features[-self.keep:].copy()
        self._raw_returns = reference.returns[-self.keep:].copy()

    @property
    def last(self) -> pd.Timestamp:
        """The newest bar."""
        return self.timestamps[-1]

    def copy(self) -> LiveMarket:
        """An independent state at the same bar: advancing one leaves the other as it is. The policy is shared, and
        so are the arrays ``advance`` replaces rather than writes into (feature rows, forecasts, returns)."""
        twin = copy.copy(self)
        twin.timestamps = list(self.timestamps)
        twin.prices = {c: rows.copy() for c, rows in self.prices.items()}
        twin.present, twin.returns, twin.index, twin.turbulence = (
            self.present.copy(), self.returns.copy(), self.index.copy(), self.turbulence.copy())
        twin._turbulence_sums, twin._vol_sums = self._turbulence_sums.copy(), self._vol_sums.copy()
        return twin

    def advance(self, timestamp: pd.Timestamp, prices: dict[str, Array], present: Bools) -> None:
        """Append bar ``timestamp`` (one row per price column, N values; ``present`` False where a symbol has none)."""
        for c in self.columns:
            self.prices[c].append(prices[c])
        self.present.append(present)
        self.timestamps.append(timestamp)
        close = self.prices["close"].values
        with np.errstate(divide="ignore", invalid="ignore"):
            r = close[-1] / close[-2] - 1.0
        r[np.isnan(r)] = 0.0
        self._raw_returns = _shift(self._raw_returns, r)
        row = np.nan_to_num(r)
        self.returns.append(row)
        self.index.append(self.index.values[-1] * (1.0 + self.returns.values[-1]))
        known = self.shared.get(timestamp)
        if known is None:
            raw = self._newest_features()
            scaled = np.nan_to_num(self._scale(raw[None]))[0]
            self.raw = _shift(self.raw, raw)
            known = (raw, scaled, self._forecast(), self._turbulence_sums.turbulence(row))  # moments up to t - 1
            self.shared.put(timestamp, known)
        else:
            self.raw = _shift(self.raw, known[0])
        self.features = _shift(self.features, known[1])
        self.predictions = _shift(np.zeros_like(self.predictions), known[2])
        self.turbulence.append(np.array(known[3]))
        self._turbulence_sums.append(row.copy())
        self._vol_sums.append(row.copy())

    def _newest_features(self) -> Array:
        present = self.present.values
        columns = {c: self.prices[c].values for c in self.columns}
        symbols: list[Prices] = []
        for j in range(present.shape[1]):
            rows = slice(None) if present[:, j].all() else present[:, j]
            arrays = {c: np.ascontiguousarray(v[rows, j]) for c, v in columns.items()}
            extra = {c: (None if np.isnan(a).all() else a) for c, a in arrays.items() if c != "close"}
            symbols.append(Prices(close=arrays["close"], **extra))
        now = np.flatnonzero(present[-1])  # a symbol without this bar has no features here (nor in the ranks)
        row = np.full((present.shape[1], len(self.raw[0, 0])), np.nan)
        row[now] = newest_features([symbols[j] for j in now], self.policy.predictor.features)
        return row

    def _scale(self, raw: Array) -> np.ndarray:
        return self.policy.predictor.scaler.transform(raw.astype(np.float32))

    def _forecast(self) -> np.ndarray:
        """The newest bar's forecasts (N,), clipped and scaled as ``build_market`` does (0 where incomplete).

        The network sees exactly the batch ``predict_panel(..., latest_only=True)`` forms over the last ``seq_len``
        rows (each symbol's one window, (F, L), symbols in order, those with a NaN left out), without the panel.
        """
        predictor = self.policy.predictor
        seq = self.raw[-predictor.seq_len:].transpose(1, 0, 2).astype(np.float32)           # (N, L, F)
        x = np.ascontiguousarray(predictor.scaler.transform(seq).transpose(0, 2, 1), dtype=np.float32)  # (N, F, L)
        complete = ~np.isnan(x).any(axis=(1, 2))
        newest = np.full(len(x), np.nan, dtype=np.float32)
        if complete.any():
            model = predictor.model
            if model.training:
                model.eval()
            with torch.inference_mode():
                raw = model(torch.from_numpy(np.ascontiguousarray(x[complete]))).numpy()
            newest[complete] = to_forecast(raw, predictor.task, predictor.y_scale)
        return np.nan_to_num(np.clip(newest / predictor.forecast_scale, -5.0, 5.0), nan=0.0)

    @property
    def market(self) -> Market:
        """The last rows of the Market ``market_until`` builds over the same bars (enough for one observation)."""
        rows = self.policy.spec.lookback + 1
        return Market(pd.DatetimeIndex(self.timestamps[-rows:]), list(self.policy.spec.symbols),
                      self._raw_returns[-rows:], self.features[-rows:], self.predictions[-rows:])

    @property
    def risk(self) -> RiskManager:
        """The risk manager over :attr:`market`'s rows, its series exact at the newest (the one decided on)."""
        p = self.policy.spec.risk
        rows, returns, t = self.policy.spec.lookback + 1, self.returns.values, len(self.timestamps) - 1
        cov = np.full((rows, returns.shape[1], returns.shape[1]), np.nan)
        cov[-1] = self._vol_sums.moments()[1] * 252
        turbulent = np.zeros(rows, dtype=bool)
        if p.turbulence_quantile is not None:
            series = self.turbulence.values
            threshold = trailing_quantile_at(series, p.turbulence_window, p.turbulence_quantile, p.min_periods, t)
            with np.errstate(invalid="ignore"):
                turbulent[-1] = series[-1] > threshold
        return RiskManager.from_series(p, self.index.values[-rows:], cov, turbulent)


def _shift(rows: np.ndarray, newest: np.ndarray) -> np.ndarray:
    """``rows`` without its oldest row, ``newest`` appended."""
    return np.concatenate([rows[1:], newest[None].astype(rows.dtype)])


_FIELDS = ("peak", "breaker_left", "entry", "side", "stop_left", "last")


def state_to_json(state: RiskState) -> dict[str, Any]:
    """The risk state of one book as JSON (NaN entries as null)."""
    out: dict[str, Any] = {}
    for name in _FIELDS:
        values = np.asarray(getattr(state, name))[0]
        out[name] = [None if isinstance(v, float) and np.isnan(v) else v for v in values.tolist()] \
            if values.ndim else values.item()
    return out


def state_from_json(data: dict[str, Any], n_assets: int) -> RiskState:
    """The state written by :func:`state_to_json`; a fresh state for ``{}``."""
    if not data:
        return RiskState.start(1, n_assets)
    def arr(name: str, dtype: type) -> Any:
        values = data[name]
        return np.array([[np.nan if v is None else v for v in values]] if isinstance(values, list) else [values],
                        dtype=dtype)
    return RiskState(arr("peak", float), arr("breaker_left", np.int64), arr("entry", float), arr("side", float),
                     arr("stop_left", np.int64), arr("last", float))
