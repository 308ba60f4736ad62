"""Gymnasium trading environments: they step ``core.execution`` and load no data.

``portfolio`` (PortfolioEnv, PortfolioVecEnv, action_to_book, action_to_weights), ``single_asset``
(SingleAssetTradingEnv) and ``rewards``. Nothing is imported here, so that ``import tradepipe`` (which
registers the gymnasium ids, see ``tradepipe.registration``) stays light.
"""

__all__: list[str] = []
