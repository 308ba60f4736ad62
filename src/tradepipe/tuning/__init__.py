"""Hyperparameter search for the predictor with Ray Tune, Optuna (TPE) and ASHA."""
