"""The risk manager: proposed target books in, books that respect every limit out, for a batch of books.

It sits between any policy and the market (training envs, backtest, serving: see ``tradepipe.agents``).
At decision time t it sees only data up to close t: the market series precomputed from returns up to t,
the strategy's equity at close t and its own state. Rules, in the order applied to the asset weights:

1. Long-only (when configured): negative weights are set to 0.
2. Stops, per position: a position's entry price is the close at which it was first filled (or flipped
   side). When the price has moved against it by ``stop_loss`` or in its favour by ``take_profit``, the
   asset is held flat for ``stop_cooldown`` decisions; a later fill starts a new position and entry price.
3. Turbulence (Kritzman & Li 2010): when the Mahalanobis distance of the return vector at t from the
   mean/covariance of the ``turbulence_window`` bars before t exceeds the trailing ``turbulence_quantile``
   of its own past values, exposure is multiplied by ``turbulence_scale`` (0: all cash).
4. Volatility targeting: exposure is scaled by ``min(max_vol_scale, target_vol / vol)`` where vol is the
   annualised ex-ante volatility ``sqrt(w' S w * periods_per_year)`` of the book under the sample
   covariance S of the ``vol_window`` bars up to t (``max_vol_scale`` when vol is 0; no scaling while S is
   undefined: too little history, or a window holding non-finite moments, see ``risk.series``).
5. Per-asset cap: weights are clipped to ``[-max_weight, max_weight]``; the excess goes to cash.
6. Gross cap: when ``sum |w| > max_gross`` the weights are scaled down to ``max_gross``.
7. No-trade band: an asset whose weight would change by less than ``no_trade_band`` from the last decision's
   (and is not closed: a target of 0 always exits) keeps that weight, so daily jitter pays no costs; when the
   kept weights push the book past ``max_gross`` it is scaled back to the cap. The band is on the last decided
   weight: the engine still trades one bar's drift back to it. 0 (the default) turns it off.
8. Drawdown circuit breaker: when equity falls more than ``max_drawdown`` below its peak, the book goes
   to cash for ``breaker_cooldown`` decisions (the decision that trips it included). Re-entry rule: at
   the next decision the policy's book is allowed again and the peak is reset to the equity at re-entry,
   so drawdowns are measured afresh from there.

Vol targeting and turbulence stay inactive until ``min_periods`` bars of history exist. Cash is what is
left: ``1 - sum(w)``. All rules are numpy over the batch; none reads data after t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradepipe.config import RiskParams
from tradepipe.core.types import I64, Array
from tradepipe.risk.series import rolling_moments, trailing_quantile, turbulence


@dataclass
class RiskState:
    """Per-book state of the risk manager for a batch of ``B`` books over ``N`` assets."""

    peak: Array          # (B,) equity peak since start or re-entry
    breaker_left: I64   # (B,) decisions still in cash after the breaker tripped
    entry: Array         # (B, N) entry price of each open position (NaN when flat)
    side: Array          # (B, N) sign of each open position at entry
    stop_left: I64      # (B, N) decisions an asset stays flat after a stop
    last: Array          # (B, N) weights of the last decision (filled at the current close)

    @classmethod
    def start(cls, n_books: int, n_assets: int) -> RiskState:
        """Fresh state: all cash, equity peak 1, no stops."""
        return cls(np.ones(n_books), np.zeros(n_books, np.int64), np.full((n_books, n_assets), np.nan),
                   np.zeros((n_books, n_assets)), np.zeros((n_books, n_assets), np.int64),
                   np.zeros((n_books, n_assets)))

    def reset(self, mask: npt.NDArray[np.bool_]) -> None:
        """Fresh state for the books where ``mask`` is True (new episodes)."""
        self.peak[mask] = 1.0
        self.breaker_left[mask] = 0
        self.entry[mask] = np.nan
        self.side[mask] = 0.0
        self.stop_left[mask] = 0
        self.last[mask] = 0.0


class RiskManager:
    """The rules of ``params`` over one market's returns (T, N); ``apply`` enforces them on a batch of books."""

    def __init__(self, params: RiskParams, returns: npt.ArrayLike, periods_per_year: int = 252, since: int = 0) -> None:
        """The rules over ``returns``; ``apply`` may be called for bars ``t >= since`` (a live step: the last)."""
        r = np.nan_to_num(np.asarray(returns, dtype=np.float64))
        self.params, self.n_assets = params, r.shape[1]
        self.prices: Array = np.cumprod(1.0 + r, axis=0, dtype=np.float64)  # price index; only ratios are used
        self.annual_cov: Array = rolling_moments(r, params.vol_window, params.min_periods)[1] * periods_per_year
        # the threshold at t is a quantile of the turbulence of the window before t: only those rows are needed
        self.turbulence: Array = turbulence(r, params.turbulence_window, params.min_periods,
                                            max(0, since - params.turbulence_window))
        self.turbulent = np.zeros(len(r), dtype=bool)
        if params.turbulence_quantile is not None:
            threshold = trailing_quantile(self.turbulence, params.turbulence_window, params.turbulence_quantile,
                                          params.min_periods, since)
            with np.errstate(invalid="ignore"):
                self.turbulent = self.turbulence > threshold  # False while either is NaN

    @classmethod
    def from_series(cls, params: RiskParams, prices: Array, annual_cov: Array, turbulent: npt.NDArray[np.bool_]
                    ) -> RiskManager:
        """The rules over series computed elsewhere (rows as ``__init__`` computes them: price index, annualised
        covariance, turbulent flag); a live step passes the rows it decides on."""
        manager = cls.__new__(cls)
        manager.params, manager.n_assets = params, prices.shape[1]
        manager.prices, manager.annual_cov, manager.turbulent = prices, annual_cov, turbulent
        manager.turbulence = np.full(len(prices), np.nan)
        return manager

    def start(self, n_books: int) -> RiskState:
        """Fresh state for ``n_books`` books."""
        return RiskState.start(n_books, self.n_assets)

    def apply(self, state: RiskState, books: npt.ArrayLike, t: npt.ArrayLike, equity: npt.ArrayLike) -> Array:
        """Books (B, N + 1: assets, then cash) to trade at close ``t`` (B,) given equity at close t (B,).

        Updates ``state``; call once per decision, in time order.
        """
        p = self.params
        t = np.asarray(t, dtype=np.int64)
        equity = np.asarray(equity, dtype=np.float64)
        w = np.array(books, dtype=np.float64)[:, :-1]
        if p.long_only:
            w = np.maximum(w, 0.0)
        w[self._stopped(state, t)] = 0.0
        w *= np.where(self.turbulent[t], p.turbulence_scale, 1.0)[:, None]
        if p.target_vol is not None:
            w *= self._vol_scale(w, t)[:, None]
        w = np.clip(w, -p.max_weight, p.max_weight)
        gross = np.abs(w).sum(axis=1)
        w *= np.minimum(1.0, p.max_gross / np.maximum(gross, 1e-300))[:, None]
        if p.no_trade_band > 0.0:
            w = self._band(state, w)
        w[self._breaker(state, equity)] = 0.0
        state.last = w
        return np.concatenate([w, 1.0 - w.sum(axis=1, keepdims=True)], axis=1)

    def _band(self, state: RiskState, w: Array) -> Array:
        """``w`` with the small changes from the last decision undone (rule 7), within ``max_gross``."""
        p = self.params
        keep = (np.abs(w - state.last) < p.no_trade_band) & (w != 0.0)
        w = np.where(keep, state.last, w)
        gross = np.abs(w).sum(axis=1)
        return np.asarray(w * np.minimum(1.0, p.max_gross / np.maximum(gross, 1e-300))[:, None], dtype=np.float64)

    def _stopped(self, state: RiskState, t: I64) -> npt.NDArray[np.bool_]:
        """Assets held flat by a stop (B, N), after updating entries and stops with the prices at t."""
        p = self.params
        price = self.prices[t]
        side = np.sign(state.last)
        new = (side != 0.0) & (np.isnan(state.entry) | (side != state.side))
        state.entry = np.where(side == 0.0, np.nan, np.where(new, price, state.entry))
        state.side = side
        state.stop_left = np.maximum(state.stop_left - 1, 0)
        if p.stop_loss is None and p.take_profit is None:
            return state.stop_left > 0
        with np.errstate(invalid="ignore"):
            gain = side * (price / state.entry - 1.0)
            hit = (gain <= -p.stop_loss if p.stop_loss is not None else False) | (
                gain >= p.take_profit if p.take_profit is not None else False)
        state.stop_left[hit] = p.stop_cooldown
        return state.stop_left > 0

    def _vol_scale(self, w: Array, t: I64) -> Array:
        """Exposure multiplier (B,) bringing the ex-ante annual volatility of ``w`` to ``target_vol``."""
        p = self.params
        assert p.target_vol is not None
        cov = self.annual_cov[t]
        defined = ~np.isnan(cov[:, 0, 0])
        vol = np.sqrt(np.maximum(np.einsum("bi,bij,bj->b", w, np.where(defined[:, None, None], cov, 0.0), w), 0.0))
        with np.errstate(divide="ignore"):  # zero vol: target / 0 = inf, so the scale is max_vol_scale
            scale = np.minimum(p.max_vol_scale, p.target_vol / vol)
        return np.where(defined, scale, 1.0)

    def _breaker(self, state: RiskState, equity: Array) -> npt.NDArray[np.bool_]:
        """Books (B,) the drawdown breaker holds in cash at this decision (see the module doc for re-entry)."""
        p = self.params
        waiting = state.breaker_left > 0
        state.breaker_left = np.where(waiting, state.breaker_left - 1, 0)
        reenter = waiting & (state.breaker_left == 0)
        state.peak = np.where(reenter, equity, np.maximum(state.peak, equity))
        if p.max_drawdown is not None:
            trip = ~waiting & (equity < state.peak * (1.0 - p.max_drawdown))
            state.breaker_left[trip] = p.breaker_cooldown
        return state.breaker_left > 0
