"""The gymnasium ids of tradepipe's environments and the demo market they are built on by default.

``gymnasium.make("tradepipe/Portfolio-v0")`` builds a ``PortfolioEnv`` on the bundled 20-stock S&P 500
universe, ``"tradepipe/SingleAsset-v0"`` a ``SingleAssetTradingEnv`` on the S&P 500 index, each with the
self-contained causal features of ``causal_features``. The environments themselves load no data; this module
does (lazily: registering imports nothing heavy).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium
import numpy as np
import numpy.typing as npt

from tradepipe.core.types import Array

__all__ = ["ENTRY_POINTS", "causal_features", "demo_market", "make_portfolio", "make_single_asset", "register_envs"]

ENTRY_POINTS = {
    "tradepipe/Portfolio-v0": "tradepipe.registration:make_portfolio",
    "tradepipe/SingleAsset-v0": "tradepipe.registration:make_single_asset",
}


def register_envs() -> None:
    """Make ``gymnasium.make`` know every id of ``ENTRY_POINTS`` (built with no arguments on bundled data)."""
    for env_id, entry_point in ENTRY_POINTS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point)


def causal_features(close: npt.ArrayLike, train_fraction: float = 0.6) -> tuple[Array, Array]:
    """Simple returns (T', N) and causal features (T', N, 4) from closes (T, N); T' = T - 21.

    Features at t: trailing 1-, 5- and 21-bar log returns and the 21-bar volatility of 1-bar log returns,
    each z-scored per asset with the mean and deviation of the first ``train_fraction`` of the rows.
    The first 21 bars (too short a history) are dropped.
    """
    log_close = np.log(np.asarray(close, dtype=np.float64))
    w = 21  # a trading month: the longest look-back of the features
    now = log_close[w:]
    volatility = np.lib.stride_tricks.sliding_window_view(np.diff(log_close, axis=0), w, axis=0).std(axis=-1)
    feats = np.stack([now - log_close[w - 1:-1], now - log_close[w - 5:-5], now - log_close[:-w], volatility],
                     axis=-1)
    n_fit = int(train_fraction * len(feats))
    mean, std = np.nanmean(feats[:n_fit], axis=0), np.nanstd(feats[:n_fit], axis=0)
    return np.expm1(feats[..., 0]), (feats - mean) / np.where(std > 0.0, std, 1.0)


@lru_cache(maxsize=4)
def demo_market(source: str = "skfolio_sp500") -> tuple[Array, Array]:
    """Read-only ``causal_features`` of the closes of a bundled source (see ``tradepipe.data.sources``)."""
    from tradepipe.core.schema import to_wide
    from tradepipe.data.sources import load_source

    returns, features = causal_features(to_wide(load_source(source)).to_numpy(dtype=np.float64))
    returns.setflags(write=False)
    features.setflags(write=False)
    return returns, features


def make_portfolio(**overrides: Any) -> Any:
    """``PortfolioEnv`` on the bundled 20-stock S&P 500 universe; ``overrides`` are its keyword arguments."""
    from tradepipe.envs.portfolio import PortfolioEnv

    return PortfolioEnv(*demo_market("skfolio_sp500"), **overrides)


def make_single_asset(**overrides: Any) -> Any:
    """``SingleAssetTradingEnv`` on the bundled S&P 500 index; ``overrides`` are its keyword arguments."""
    from tradepipe.envs.single_asset import SingleAssetTradingEnv

    return SingleAssetTradingEnv(*demo_market("skfolio_sp500_index"), **overrides)
