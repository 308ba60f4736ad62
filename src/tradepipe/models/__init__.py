"""The CNN-LSTM predictor: windowed panel data, network, training loop and MLflow packaging."""
