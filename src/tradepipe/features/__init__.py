"""Causal features: TA-Lib indicators, returns, volatility, cross-sectional ranks, headline sentiment."""

from tradepipe.features.build import (
    build_features,
    build_labels,
    cross_sectional_ranks,
    feature_columns,
    indicator_names,
)
from tradepipe.features.indicators import INDICATORS

__all__ = ["INDICATORS", "build_features", "build_labels", "cross_sectional_ranks", "feature_columns",
           "indicator_names"]
