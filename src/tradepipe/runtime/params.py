"""Params as a stage uses them: params.yaml's schema (``tradepipe.config``) plus what only the library decides.

- ``features.ohlcv: null`` becomes true or false from what ``data.source`` ships (``data.sources.has_ohlcv``:
  bundled sets are known, ``files`` sources are decided from their files' columns).
- ``rl_train.reward_params`` must be parameters of ``rl_train.reward`` and pass that reward's own checks.
- ``data.source`` and ``data.benchmark`` must be sources the library has (``files`` needs ``data.path``).
"""

from __future__ import annotations

import inspect
from pathlib import Path

from tradepipe.config import ConfigError, Params, RLParams, load_params
from tradepipe.data.sources import BUNDLED, EXTERNAL, has_ohlcv
from tradepipe.envs.rewards import REWARDS, make_reward

__all__ = ["check_reward", "check_sources", "resolve", "stage_params"]


def check_sources(params: Params) -> None:
    """Refuse a data source or benchmark the library does not have (ValueError naming the key)."""
    known = sorted([*BUNDLED, *EXTERNAL])
    for key, name in (("source", params.data.source), ("benchmark", params.data.benchmark)):
        if name is not None and name not in known:
            raise ValueError(f"{key}: {name!r} is not a data source; choose one of {known}")
        if name == "files" and not params.data.path:
            raise ValueError(f"{key}: 'files' needs data.path (a .csv/.parquet file or a folder of them)")


def check_reward(rl: RLParams) -> None:
    """Refuse reward parameters the configured reward does not take or rejects (ValueError naming them)."""
    accepted = set(inspect.signature(REWARDS[rl.reward].__init__).parameters) - {"self", "shape"}
    unknown = set(rl.reward_params) - accepted
    if unknown:
        raise ValueError(f"reward_params: {sorted(unknown)} are not parameters of reward {rl.reward!r} "
                         f"(it takes {sorted(accepted) or 'none'})")
    make_reward(rl.reward, (), rl.reward_params)  # its own range checks, e.g. eta in (0, 1]


def resolve(params: Params, source: str | Path = "params.yaml") -> Params:
    """``params`` with ``features.ohlcv`` decided, the sources and the reward checked; ConfigError names the key."""
    try:
        check_sources(params)
    except ValueError as exc:
        raise ConfigError(f"{source}: invalid params:\n  data.{exc}") from exc
    try:
        check_reward(params.rl_train)
    except ValueError as exc:
        raise ConfigError(f"{source}: invalid params:\n  rl_train.{exc}") from exc
    if params.features.ohlcv is not None:
        return params
    features = params.features.model_copy(update={"ohlcv": has_ohlcv(params.data.source, params.data)})
    return params.model_copy(update={"features": features})


def stage_params(path: str | Path = "params.yaml") -> Params:
    """Read params.yaml (``config.load_params``) and ``resolve`` it: what every stage and job runs on."""
    return resolve(load_params(path), path)
