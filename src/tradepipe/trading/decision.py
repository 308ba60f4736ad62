"""The champion's decision at one bar: market arrays from the account's data, its real book, its risk state.

Every step computes features, the risk manager's series and the observation from the bars between the
account's ``anchor`` and the bar, so each value is the one a backtest over the same bars computes at that bar
(every transform is causal and sequential from the anchor); only the newest forecast is computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tradepipe.agents.policy import TradingPolicy, agent_actor
from tradepipe.core.market import Market
from tradepipe.core.types import Array
from tradepipe.features import build_features
from tradepipe.risk.manager import RiskState

__all__ = ["Decided", "decide", "market_until", "state_from_json", "state_to_json"]


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


def decide(policy: TradingPolicy, market: Market, book: Array, equity: float, state: RiskState) -> Decided:
    """Decide at the last bar of ``market`` holding ``book`` (N + 1 weights), at ``equity`` (1.0 at opening)."""
    t = len(market.timestamps) - 1
    observation = policy.spec.env(market).observe(t, np.asarray(book, dtype=np.float64))
    proposed = agent_actor(policy.agents, policy.blend, policy.spec)(observation[None])
    risk = policy.spec.risk_manager(market, since=t)
    target = risk.apply(state, proposed, np.array([t]), np.array([equity]))
    return Decided(proposed[0], target[0], state)


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
