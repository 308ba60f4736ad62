"""Deep RL agents (stable-baselines3) and the trading policy bundle served from MLflow."""
