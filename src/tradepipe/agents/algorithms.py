"""SAC, TD3 and PPO from stable-baselines3, built from params.yaml's rl_train section, risk manager in the loop.

Saves are byte-reproducible (:func:`normalized_zip`: no write times, memory addresses or wall-clock start time, so
the same agent gives the same bytes and DVC/registry hashes), and :func:`load_agent` unpickles nothing: SB3 keeps
parts of an agent (spaces, schedules, buffer classes) as cloudpickle inside the zip's ``data`` JSON, and those are
rebuilt here from their readable fields instead; the weights are read by SB3 with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import stable_baselines3 as sb3
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer, RolloutBuffer
from stable_baselines3.common.noise import NormalActionNoise, VectorizedActionNoise
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule

from tradepipe.agents.env import BookEnv, ManagedVecEnv
from tradepipe.config import AgentParams, Algo
from tradepipe.core.io import atomic_path
from tradepipe.risk import RiskManager

TD3_NOISE = 0.1  # std of TD3's Gaussian exploration noise, in action units ([-1, 1])
# training bookkeeping that holds wall-clock times; SB3 recreates it when a loaded agent learns again
VOLATILE = ("start_time", "ep_info_buffer", "ep_success_buffer")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_CONSTANT = re.compile(r"^ConstantSchedule\(val=(?P<val>[^()]+)\)$")
_SERIALIZED = ":serialized:"


class _ReproducibleSave(BaseAlgorithm):
    """SB3's ``save`` writing :func:`normalized_zip` bytes, atomically."""

    def save(self, path: str | Path | io.BufferedIOBase, exclude: Iterable[str] | None = None,
             include: Iterable[str] | None = None) -> None:
        buffer = io.BytesIO()
        super().save(buffer, exclude=[*(exclude or ()), *VOLATILE], include=include)
        payload = normalized_zip(buffer.getvalue())
        if isinstance(path, io.BufferedIOBase):
            path.write(payload)
            return
        target = Path(path)
        target = target if target.suffix else target.with_name(f"{target.name}.zip")  # as SB3 names it
        with atomic_path(target) as tmp:
            tmp.write_bytes(payload)


class SAC(_ReproducibleSave, sb3.SAC):
    """SB3's SAC with byte-reproducible saves."""


class TD3(_ReproducibleSave, sb3.TD3):
    """SB3's TD3 with byte-reproducible saves."""


class PPO(_ReproducibleSave, sb3.PPO):
    """SB3's PPO with byte-reproducible saves."""


ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"sac": SAC, "td3": TD3, "ppo": PPO}


def make_agent(algo: Algo, env: BookEnv, risk: RiskManager, params: AgentParams, total_timesteps: int,
               seed: int) -> BaseAlgorithm:
    """An untrained, seeded CPU agent on ``params.n_envs`` risk-managed books of ``env``."""
    vec = ManagedVecEnv(env, risk, params.n_envs, seed)
    kwargs: dict[str, Any] = {"learning_rate": params.learning_rate, "batch_size": params.batch_size,
                              "gamma": params.gamma, "policy_kwargs": {"net_arch": list(params.net_arch)}}
    if algo == "ppo":
        kwargs.update(n_steps=params.n_steps)
    else:
        kwargs.update(buffer_size=params.buffer_size, learning_starts=min(1000, total_timesteps // 10))
    if algo == "td3":
        n_actions = vec.action_space.shape[0]  # type: ignore[index]
        kwargs.update(action_noise=NormalActionNoise(np.zeros(n_actions), np.full(n_actions, TD3_NOISE)))
    return ALGORITHMS[algo]("MlpPolicy", vec, seed=seed, device="cpu", verbose=0, **kwargs)


def normalized_zip(raw: bytes) -> bytes:
    """An SB3 zip made byte-reproducible: entries sorted, fixed times and modes, and in the ``data`` JSON every
    memory address in a readable field (``<function f at 0x7f...>``) replaced by ``0x0`` (the pickled values,
    which hold none, are kept as they are)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name in sorted(src.namelist()):
            payload = src.read(name)
            if name == "data":
                payload = json.dumps(_without_addresses(json.loads(payload)), indent=4).encode()
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.create_system, info.external_attr = 3, 0o644 << 16
            dst.writestr(info, payload)
    return out.getvalue()


def _without_addresses(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v if k == _SERIALIZED else _without_addresses(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_addresses(v) for v in value]
    return _ADDRESS.sub(" at 0x0", value) if isinstance(value, str) else value


def load_agent(algo: str, path: str) -> BaseAlgorithm:
    """Load a saved agent of algorithm ``algo`` (no environment attached) without unpickling anything.

    Every pickled entry of the zip's ``data`` is rebuilt from its readable fields (:func:`safe_objects`) and handed
    to SB3 as ``custom_objects``, so SB3 never calls cloudpickle; the weights are read with ``weights_only=True``.
    ValueError naming the file and the entry when one cannot be rebuilt that way.
    """
    cls = ALGORITHMS[algo]
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable stable-baselines3 agent ({type(exc).__name__}: {exc})") from exc
    return cls.load(path, device="cpu", custom_objects=safe_objects(cls, data, path))


def safe_objects(cls: type[BaseAlgorithm], data: dict[str, Any], path: str) -> dict[str, Any]:
    """The value of every pickled entry of ``data`` (a saved agent's ``data`` JSON), rebuilt without unpickling."""
    objects: dict[str, Any] = {}
    for key, value in data.items():
        if not (isinstance(value, dict) and _SERIALIZED in value):
            continue
        build = _REBUILD.get(key)
        if build is None:
            raise ValueError(f"{path}: entry {key!r} of the agent is pickled and tradepipe cannot rebuild it "
                             "without unpickling (not an agent tradepipe saved?); refusing to load it")
        try:
            objects[key] = build(cls, value, data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: entry {key!r} of the agent cannot be rebuilt without unpickling: {exc}; "
                             "refusing to load it") from exc
    return objects


def _policy_class(cls: type[BaseAlgorithm], value: dict[str, Any], _data: dict[str, Any]) -> type:
    policy = cls.policy_aliases["MlpPolicy"]
    if value.get("__module__") != policy.__module__:
        raise ValueError(f"policy class from {value.get('__module__')!r}, expected {policy.__module__} (MlpPolicy)")
    return policy


def _floats(text: str) -> npt.NDArray[np.float64]:
    if "..." in text:
        raise ValueError(f"array {text[:40]!r}... is summarized")
    values = np.array([float(v) for v in text.strip().strip("[]").split()], dtype=np.float64)
    if not np.all(np.isinf(values) | (values == np.round(values))):
        raise ValueError("only integer or infinite bounds are rebuilt exactly from their text")
    return values



def _box(_cls: type[BaseAlgorithm], value: dict[str, Any], _data: dict[str, Any]) -> spaces.Box:
    if value.get(":type:") != "<class 'gymnasium.spaces.box.Box'>":
        raise ValueError(f"a {value.get(':type:')}, expected a gymnasium Box")
    dtype, shape = np.dtype(value["dtype"]), tuple(int(n) for n in value["_shape"])
    low, high = _floats(value["low"]), _floats(value["high"])
    return spaces.Box(low.reshape(shape).astype(dtype), high.reshape(shape).astype(dtype), shape, dtype)


def _schedule(_cls: type[BaseAlgorithm], value: dict[str, Any], _data: dict[str, Any]) -> FloatSchedule:
    match = _CONSTANT.match(str(value.get("value_schedule", "")))
    if match is None:
        raise ValueError(f"schedule {value.get('value_schedule')!r} is not a ConstantSchedule")
    return FloatSchedule(ConstantSchedule(float(match["val"])))


def _action_noise(_cls: type[BaseAlgorithm], value: dict[str, Any], data: dict[str, Any]) -> VectorizedActionNoise:
    text = str(value["_base_noise"])
    parts = re.fullmatch(r"NormalActionNoise\(mu=(?P<mu>\[[^\]]*\]), sigma=(?P<sigma>\[[^\]]*\])\)", text)
    if parts is None:
        raise ValueError(f"action noise {text[:80]!r} is not a NormalActionNoise")
    mu = np.array([float(v) for v in parts["mu"].strip("[]").split()])
    sigma = np.array([float(v) for v in parts["sigma"].strip("[]").split()])
    return VectorizedActionNoise(NormalActionNoise(mu, sigma), int(value["n_envs"]))


def _none(_cls: type[BaseAlgorithm], _value: dict[str, Any], _data: dict[str, Any]) -> None:
    """Rollout state and episode statistics: recreated by SB3 when the agent learns again."""
    return None


def _class_of(expected: type) -> Callable[[type[BaseAlgorithm], dict[str, Any], dict[str, Any]], type]:
    def build(_cls: type[BaseAlgorithm], value: dict[str, Any], _data: dict[str, Any]) -> type:
        if value.get("__module__") != expected.__module__:
            raise ValueError(f"a class from {value.get('__module__')!r}, expected {expected.__qualname__}")
        return expected
    return build


def _train_freq(_cls: type[BaseAlgorithm], _value: dict[str, Any], _data: dict[str, Any]) -> TrainFreq:
    """SB3's default, the one :func:`make_agent` always uses: train after every step."""
    return TrainFreq(1, TrainFrequencyUnit.STEP)


_REBUILD: dict[str, Callable[[type[BaseAlgorithm], dict[str, Any], dict[str, Any]], Any]] = {
    "policy_class": _policy_class, "observation_space": _box, "action_space": _box,
    "lr_schedule": _schedule, "clip_range": _schedule, "clip_range_vf": _schedule,
    "action_noise": _action_noise, "train_freq": _train_freq,
    "replay_buffer_class": _class_of(ReplayBuffer), "rollout_buffer_class": _class_of(RolloutBuffer),
    "_last_obs": _none, "_last_original_obs": _none, "_last_episode_starts": _none,
    "ep_info_buffer": _none, "ep_success_buffer": _none,
}
