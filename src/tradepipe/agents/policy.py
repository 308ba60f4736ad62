"""The trading policy: agents, risk manager and observation builder turning market arrays into target weights."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from gymnasium import spaces
from mlflow.pyfunc import PythonModel
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.sac.policies import Actor as SACActor

from tradepipe.agents.algorithms import load_agent
from tradepipe.agents.env import BookEnv
from tradepipe.agents.market import build_market
from tradepipe.config import Params, RiskParams
from tradepipe.core.market import Market
from tradepipe.core.types import Array
from tradepipe.envs.portfolio import Obs, action_to_book, observation
from tradepipe.features import build_features, feature_columns
from tradepipe.models.predictor import Predictor
from tradepipe.risk import OodReference, RiskManager, RiskState

CASH = "CASH"
OOD_FILE = "ood.json"  # the OOD guard's reference, beside policy.json (covered by the signed artifact digest)
Actor = Callable[[Obs], Array]  # observations (B, obs) -> proposed books (B, N + 1)
BarActor = Callable[[int, Obs], Array]  # (bar t, observations (1, obs)) -> proposed books (1, N + 1)


@dataclass(frozen=True)
class PolicySpec:
    """How the policy sees and trades the market: universe (in order), look-back, costs and risk limits.

    ``long_only`` and ``max_leverage`` shape the books the agents propose (``action_to_book``): long-only
    softmax books, or long-short books of gross exposure up to ``max_leverage``. The risk manager then
    enforces ``risk`` on them. ``from_params`` takes both from params.yaml's ``risk`` section. ``forecast``:
    whether the predictor's forecasts are part of the observation (False only for the backtest's ablation).
    """

    symbols: list[str]
    lookback: int
    cost_rate: float
    long_only: bool = True
    max_leverage: float = 1.0
    risk: RiskParams = field(default_factory=RiskParams)
    forecast: bool = True

    def __post_init__(self) -> None:
        if not self.max_leverage > 0.0:
            raise ValueError(f"PolicySpec.max_leverage must be > 0, got {self.max_leverage}")

    @classmethod
    def from_params(cls, symbols: list[str], params: Params) -> PolicySpec:
        """The spec params.yaml configures for ``symbols``: ``risk.long_only`` and ``risk.max_gross`` shape the
        proposed books, ``rl_train.lookback`` the observations, ``costs`` the fills."""
        return cls(symbols=list(symbols), lookback=params.rl_train.lookback, cost_rate=params.costs.rate,
                   long_only=params.risk.long_only, max_leverage=params.risk.max_gross, risk=params.risk)

    def book(self, action: npt.ArrayLike) -> Array:
        """The book (N asset weights, then cash) the policy proposes for raw ``action``, one or a batch."""
        return action_to_book(action, self.long_only, self.max_leverage)

    def env(self, market: Market, **kwargs: Any) -> BookEnv:
        """The env over ``market`` configured as this policy was trained (it executes given books)."""
        return BookEnv(market.returns, market.features, predictions=self._predictions(market),
                       cost_rate=self.cost_rate,
                       lookback=self.lookback, long_only=self.long_only, max_leverage=self.max_leverage, **kwargs)

    def observe(self, market: Market, t: int, book: Array) -> Obs:
        """The observation ``env(market).observe(t, book)`` gives, without building the env."""
        return observation(market.features, self._predictions(market), t, self.lookback, book)

    def _predictions(self, market: Market) -> Obs | None:
        """The forecasts the policy sees in ``market`` (None when it trades without them); ValueError when
        ``market`` is not of the policy's universe."""
        if market.symbols != self.symbols:
            raise ValueError(f"the policy trades {self.symbols}; the data holds {market.symbols}")
        return market.predictions if self.forecast else None

    def risk_manager(self, market: Market, since: int = 0) -> RiskManager:
        """The risk manager over ``market``'s returns, for decisions from bar ``since`` on."""
        return RiskManager(self.risk, market.returns, since=since)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_json`` reads it back."""
        return {"symbols": self.symbols, "lookback": self.lookback, "cost_rate": self.cost_rate,
                "long_only": self.long_only, "max_leverage": self.max_leverage, "risk": self.risk.model_dump(),
                "forecast": self.forecast}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicySpec:
        """The spec written by ``to_json``; keys added since (``max_leverage``, ``forecast``) default when absent."""
        return cls(**{**data, "risk": RiskParams(**data["risk"])})


def deterministic_actions(policy: BasePolicy, obs: Obs) -> npt.NDArray[np.float32]:
    """``policy.predict(obs, deterministic=True)[0]`` for a batch of observations (B, obs), bit for bit.

    The same network call and post-processing (unscaling or clipping to the Box action space) without
    ``predict``'s per-call overhead: eval mode is switched on only when the policy is in training mode, and SAC's
    deterministic action (without gSDE) is the tanh of its actor's mean, without building the distribution.
    """
    if policy.training:
        policy.set_training_mode(False)
    space = policy.action_space
    assert isinstance(space, spaces.Box)
    with torch.no_grad():
        x = torch.as_tensor(obs, device=policy.device)
        actor = getattr(policy, "actor", None)
        if isinstance(actor, SACActor) and not actor.use_sde:  # the squashed Gaussian's mode, tanh(mean), directly
            actions = torch.tanh(actor.mu(actor.latent_pi(actor.extract_features(x, actor.features_extractor))))
        else:
            actions = policy._predict(x, deterministic=True)
    out = actions.cpu().numpy().reshape((-1, *space.shape))
    return policy.unscale_action(out) if policy.squash_output else np.clip(out, space.low, space.high)


def agent_actor(agents: dict[str, BaseAlgorithm], blend: dict[str, float], spec: PolicySpec) -> Actor:
    """Deterministic proposed books: the ``blend``-weighted mean of each agent's book (``spec.book``)."""
    policies = {name: agents[name].policy for name in blend}

    def act(obs: Obs) -> Array:
        books = [weight * spec.book(deterministic_actions(policies[name], obs)) for name, weight in blend.items()]
        return np.asarray(np.sum(books, axis=0), dtype=np.float64)
    return act


def rollout(act: Actor, env: BookEnv, risk: RiskManager, start: int | None = None) -> Array:
    """Risk-managed target weights (T, N) decided at every bar from ``start`` (default ``lookback - 1``) on, all
    cash and a fresh risk state at ``start`` (zeros before): the bars before it only feed features and risk series.

    One book: the actor proposes from the observation at t, the risk manager rules with the equity at close
    t, the env fills at close t + 1 (``core.execution.execute`` of the result replays the same equity).
    """
    return rollout_bars(bar_blind(act), env, risk, start)


def bar_blind(act: Actor) -> BarActor:
    """``act`` as a :data:`BarActor` that decides from the observation alone (the bar it is told is ignored)."""
    return lambda _t, obs: act(obs)


def rollout_bars(act: BarActor, env: BookEnv, risk: RiskManager, start: int | None = None,
                 state: RiskState | None = None) -> Array:
    """``rollout`` with an actor told the bar it decides at (``act(t, obs)``, called once per bar in time order,
    before the risk manager rules on bar t), ruling with ``state`` (updated in place; default a fresh one)."""
    targets = np.zeros((env.n_bars, env.n_assets))
    state = risk.start(1) if state is None else state
    obs, info = env.reset(options=None if start is None else {"start": start})
    while True:
        t = int(info["t"])
        book = risk.apply(state, act(t, obs[None]), np.array([t]), np.array([info["equity"]]))[0]
        targets[t] = book[:-1]
        if t == env.n_bars - 1:
            return targets
        obs, _, _, _, info = env.step(book)


@dataclass
class TradingPolicy:
    """Agents + blend + spec (risk limits included) + predictor: recent bars in, target weights out."""

    agents: dict[str, BaseAlgorithm]
    blend: dict[str, float]
    spec: PolicySpec
    predictor: Predictor
    ood: OodReference | None = None  # the training window's observations (the OOD guard); None: not guarded

    def market_from_tables(self, bars: pd.DataFrame, features: pd.DataFrame, predictions: pd.DataFrame) -> Market:
        """Market arrays from precomputed feature and forecast tables, scaled as in training."""
        return build_market(bars, features, predictions, feature_columns(self.predictor.features),
                            self.predictor.scaler, self.predictor.forecast_scale)

    def market(self, bars: pd.DataFrame) -> Market:
        """Market arrays for raw canonical ``bars``: features and forecasts computed with the predictor's recipe."""
        features = build_features(bars, self.predictor.features)
        return self.market_from_tables(bars, features, self.predictor.predict_features(features))

    def actor(self) -> Actor:
        """The books the agents propose (blended, deterministic), before the risk manager."""
        return agent_actor(self.agents, self.blend, self.spec)

    def targets(self, market: Market, start: int | None = None) -> Array:
        """Risk-managed target weights (T, N) over ``market``, replaying the policy from bar ``start`` (see
        ``rollout``; default: its first decidable bar)."""
        return rollout(self.actor(), self.spec.env(market), self.spec.risk_manager(market), start)

    def target_weights(self, bars: pd.DataFrame) -> pd.Series:
        """Weights to hold after the last bar (assets, then cash), replaying the policy over ``bars``."""
        market = self.market(bars)
        weights = self.targets(market)[-1]
        return pd.Series([*weights, 1.0 - weights.sum()], index=[*market.symbols, CASH], name="weight")

    def save(self, directory: Path) -> None:
        """Write agents, blend, spec and predictor into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        for name in self.blend:
            self.agents[name].save(directory / f"{name}.zip")
        policy = {"spec": self.spec.to_json(), "blend": self.blend}
        (directory / "policy.json").write_text(json.dumps(policy, indent=2, sort_keys=True))
        if self.ood is not None:
            (directory / OOD_FILE).write_text(json.dumps(self.ood.to_json()))
        self.predictor.save(directory / "predictor")

    @classmethod
    def load(cls, directory: Path) -> TradingPolicy:
        """Read a policy written by :meth:`save`."""
        policy = json.loads((directory / "policy.json").read_text())
        blend = {str(name): float(weight) for name, weight in policy["blend"].items()}
        agents = {name: load_agent(name, str(directory / f"{name}.zip")) for name in blend}
        ood_file = directory / OOD_FILE
        ood = OodReference.from_json(json.loads(ood_file.read_text())) if ood_file.is_file() else None
        return cls(agents, blend, PolicySpec.from_json(policy["spec"]), Predictor.load(directory / "predictor"), ood)


# log with ``mlflow.pyfunc.log_model(python_model=str(PYFUNC_CODE), artifacts={"policy": DIR})``: models from code
PYFUNC_CODE = Path(__file__).with_name("_policy_pyfunc.py")


class TradingPolicyModel(PythonModel):
    """MLflow pyfunc: recent canonical bars of the policy's universe in, risk-managed target weights out."""

    def load_context(self, context: Any) -> None:
        self.policy = TradingPolicy.load(Path(context.artifacts["policy"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
                ) -> pd.DataFrame:
        bars = model_input.assign(timestamp=pd.to_datetime(model_input["timestamp"], utc=True))
        return self.policy.target_weights(bars).rename_axis("symbol").reset_index()
