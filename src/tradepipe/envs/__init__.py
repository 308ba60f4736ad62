"""Gymnasium trading environments: they step ``core.execution.rebalance`` and load no data (the demo market of the
registered ids is ``tradepipe.registration``'s).

Nothing is imported here (importing the package stays light); its public modules:

- ``portfolio``: Multi-asset portfolio environment (N assets plus cash) stepping ``core.execution.rebalance`` bar by
  bar
- ``rewards``: Step rewards for the trading environments
- ``single_asset``: Single-asset trading: the action is a target position, the accounting is ``PortfolioEnv``'s with
  N = 1
"""

__all__ = ["portfolio", "rewards", "single_asset"]
