"""Causal features: TA-Lib indicators, returns and volatility; the forward-return label kept apart."""

from tradepipe.features.build import build_features, build_labels, feature_columns
from tradepipe.features.indicators import INDICATORS

__all__ = ["INDICATORS", "build_features", "build_labels", "feature_columns"]
