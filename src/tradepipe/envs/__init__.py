"""Gymnasium trading environments.

``portfolio`` (PortfolioEnv, PortfolioVecEnv, action_to_weights, make_default), ``single_asset``
(SingleAssetTradingEnv), ``rewards`` and ``registration``. Nothing is imported here, so that
``import tradepipe`` (which registers the ids) stays light.
"""
