"""Deep RL agents (stable-baselines3), the trading policy bundle served from MLflow, the ensemble, and the market
arrays built from features and forecasts.

Nothing is imported here (importing the package stays light); its public modules:

- ``algorithms``: SAC, TD3 and PPO from stable-baselines3, built from params.yaml's rl_train section, risk manager
  in the loop
- ``ensemble``: Ensembles of agents: pick the best by validation Sharpe, or blend their books by validation Sharpe
- ``env``: Environments whose fills pass through the risk manager: the policy proposes, the risk manager disposes
- ``market``: Build the market arrays (``core.market.Market``) from bars, features and the predictor's forecasts
- ``policy``: The trading policy: agents, risk manager and observation builder turning market arrays into target
  weights
- ``training``: Train the configured agents on a market window, score each on a held-out tail, combine them into a
  policy
"""

__all__ = ["algorithms", "ensemble", "env", "market", "policy", "training"]
