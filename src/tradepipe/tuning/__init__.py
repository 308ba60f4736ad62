"""Hyperparameter search with Ray Tune, Optuna (TPE) and ASHA: the predictor's and the agents'.

Nothing is imported here (importing the package stays light); its public modules:

- ``agents``: Ray Tune + OptunaSearch + ASHAScheduler over one RL algorithm's hyperparameters
- ``ledger``: The trial ledger: every configuration evaluated on the way to a backtest, with its validation-window
  Sharpe
- ``search``: Ray Tune + OptunaSearch + ASHAScheduler over the CNN-LSTM's hyperparameters
"""

__all__ = ["agents", "ledger", "search"]
