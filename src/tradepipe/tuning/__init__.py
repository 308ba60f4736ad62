"""Hyperparameter search with Ray Tune, Optuna (TPE) and ASHA: the predictor's and the agents'.

Nothing is imported here (importing the package stays light); its public modules:

- ``agents``: Ray Tune + OptunaSearch + ASHAScheduler over one RL algorithm's hyperparameters
- ``search``: Ray Tune + OptunaSearch + ASHAScheduler over the CNN-LSTM's hyperparameters
"""

__all__ = ["agents", "search"]
