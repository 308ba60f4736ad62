"""When to retrain: the monitor's thresholds applied to drift and live performance."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from tradepipe.config import MonitorParams


def drifted_features(drift: pd.DataFrame, cfg: MonitorParams) -> list[str]:
    """Features whose PSI or KS statistic crosses its threshold."""
    return sorted(drift.index[(drift["psi"] > cfg.max_psi) | (drift["ks"] > cfg.max_ks)])


def retrain_reasons(drift: pd.DataFrame, live: Mapping[str, float], cfg: MonitorParams,
                    age_days: float | None = None) -> list[str]:
    """Why the champion should be retrained (empty: it should not); ``live`` empty: performance not judged;
    ``age_days``: days since the champion was registered (None: not judged)."""
    reasons = []
    drifted = drifted_features(drift, cfg)
    if len(drifted) > cfg.max_drifted_features:
        reasons.append(f"{len(drifted)} features drifted (> {cfg.max_drifted_features}): {', '.join(drifted)}")
    if age_days is not None and cfg.max_model_age_days is not None and age_days > cfg.max_model_age_days:
        reasons.append(f"champion registered {age_days:.0f} days ago (> max_model_age_days {cfg.max_model_age_days})")
    if not live:
        return reasons
    if live["sharpe"] < cfg.min_sharpe:
        reasons.append(f"live Sharpe {live['sharpe']:.3f} < {cfg.min_sharpe}")
    if live["max_drawdown"] > cfg.max_drawdown:
        reasons.append(f"live max drawdown {live['max_drawdown']:.3f} > {cfg.max_drawdown}")
    return reasons
