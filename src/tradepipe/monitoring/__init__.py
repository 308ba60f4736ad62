"""Monitoring: feature drift (PSI, KS) and the champion's live performance, with retrain thresholds."""

from tradepipe.monitoring.drift import feature_drift, ks_statistic, psi

__all__ = ["feature_drift", "ks_statistic", "psi"]
