"""The CNN-LSTM predictor: windowed panel data, network, training loop, walk-forward refits and MLflow packaging.

Nothing is imported here (importing the package stays light); its public modules:

- ``calibration``: Calibration: do larger forecasts come with larger realized outcomes? A table and a plot
- ``cnn_lstm``: The CNN-LSTM network: a stack of causal dilated Conv1d over time, an LSTM, and a regression head
- ``evaluation``: Forecast quality: MSE, directional accuracy, daily information coefficient and rank IC, with
  baselines
- ``panel``: Features and labels as a dense (symbol, time, feature) panel, chronological splits and window sampling
- ``predictor``: The trained predictor as one bundle (network, scaler, window, feature recipe) and its MLflow pyfunc
- ``training``: Training loop: AdamW, cosine learning-rate schedule, gradient clipping, early stopping, fixed seeds,
  and
- ``walk_forward``: Walk-forward forecasts: each block of bars is predicted by a model fitted only on bars before it
"""

__all__ = ["calibration", "cnn_lstm", "evaluation", "panel", "predictor", "training", "walk_forward"]
