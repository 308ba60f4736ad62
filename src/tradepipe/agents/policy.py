"""The trading policy: an agent plus everything needed to turn market arrays into target weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from mlflow.pyfunc import PythonModel
from stable_baselines3.common.base_class import BaseAlgorithm

from tradepipe.agents.algorithms import load_agent
from tradepipe.agents.market import Market, build_market
from tradepipe.envs.portfolio import PortfolioEnv
from tradepipe.features import build_features, feature_columns
from tradepipe.models.predictor import Predictor

CASH = "CASH"


@dataclass(frozen=True)
class PolicySpec:
    """How the agent sees the market: its universe (in order), look-back and execution settings."""

    algo: str
    symbols: list[str]
    lookback: int
    cost_rate: float
    long_only: bool = True

    def env(self, market: Market, **kwargs: Any) -> PortfolioEnv:
        """A PortfolioEnv over ``market`` configured as this policy was trained."""
        if market.symbols != self.symbols:
            raise ValueError(f"the policy trades {self.symbols}; the data holds {market.symbols}")
        return PortfolioEnv(market.returns, market.features, predictions=market.predictions,
                            cost_rate=self.cost_rate, lookback=self.lookback, long_only=self.long_only, **kwargs)


def rollout(agent: BaseAlgorithm, env: PortfolioEnv) -> npt.NDArray[np.float64]:
    """Deterministic target weights (T, N) decided at every bar from ``lookback - 1`` on (zeros before)."""
    targets = np.zeros((env.n_bars, env.n_assets))
    obs, info = env.reset()
    t = int(info["t"])
    while True:
        action, _ = agent.predict(obs, deterministic=True)
        targets[t] = env.action_weights(action)
        if t == env.n_bars - 1:
            return targets
        obs, _, _, _, info = env.step(action)
        t = int(info["t"])


@dataclass
class TradingPolicy:
    """Agent + spec + predictor: recent bars in, target weights out, identically in backtest and serving."""

    agent: BaseAlgorithm
    spec: PolicySpec
    predictor: Predictor

    def market_from_tables(self, bars: pd.DataFrame, features: pd.DataFrame, predictions: pd.DataFrame) -> Market:
        """Market arrays from precomputed feature and forecast tables, scaled as in training."""
        return build_market(bars, features, predictions, feature_columns(self.predictor.features),
                            self.predictor.scaler, self.predictor.y_scale)

    def market(self, bars: pd.DataFrame) -> Market:
        """Market arrays for raw canonical ``bars``: features and forecasts computed with the predictor's recipe."""
        return self.market_from_tables(bars, build_features(bars, self.predictor.features),
                                       self.predictor.predict_bars(bars))

    def target_weights(self, bars: pd.DataFrame) -> pd.Series:
        """Weights to hold after the last bar (assets, then cash), replaying the policy over ``bars``."""
        market = self.market(bars)
        weights = rollout(self.agent, self.spec.env(market))[-1]
        return pd.Series([*weights, 1.0 - weights.sum()], index=[*market.symbols, CASH], name="weight")

    def save(self, directory: Path) -> None:
        """Write agent, spec and predictor into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        self.agent.save(directory / "agent.zip")
        (directory / "policy.json").write_text(json.dumps(asdict(self.spec), indent=2, sort_keys=True))
        self.predictor.save(directory / "predictor")

    @classmethod
    def load(cls, directory: Path) -> TradingPolicy:
        """Read a policy written by :meth:`save`."""
        spec = PolicySpec(**json.loads((directory / "policy.json").read_text()))
        return cls(load_agent(spec.algo, str(directory / "agent.zip")), spec, Predictor.load(directory / "predictor"))


class TradingPolicyModel(PythonModel):
    """MLflow pyfunc: recent canonical bars of the policy's universe in, target weights out."""

    def load_context(self, context: Any) -> None:
        self.policy = TradingPolicy.load(Path(context.artifacts["policy"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
                ) -> pd.DataFrame:
        bars = model_input.assign(timestamp=pd.to_datetime(model_input["timestamp"], utc=True))
        return self.policy.target_weights(bars).rename_axis("symbol").reset_index()
