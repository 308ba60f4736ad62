"""Wire a project's paper-trading desk: its bars, the trade store, the simulated broker and the registry's policies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlflow import MlflowClient
from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import Params
from tradepipe.paths import BARS, PAPER_BROKER_DB
from tradepipe.registry.provenance import load_verified
from tradepipe.registry.versions import AGENT_MODEL, champion
from tradepipe.runtime.tracking import resolve_tracking_uri
from tradepipe.trading.broker import SimulatedBroker
from tradepipe.trading.step import Trader
from tradepipe.trading.store import TradeStore, db_url

__all__ = ["TradingError", "champion_version", "load_bars", "open_desk", "registry_policy"]


class TradingError(RuntimeError):
    """Paper trading cannot proceed; the message says what to do."""


def load_bars(root: Path) -> pd.DataFrame:
    """The project's canonical bars (``data/raw/bars.parquet``, written by ingest)."""
    path = root / BARS
    if not path.is_file():
        raise TradingError(f"{path} does not exist: run the pipeline first (`make run` or `dvc repro ingest`)")
    bars = pd.read_parquet(path)
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
    return bars.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)


def registry_policy(root: Path, params: Params) -> tuple[MlflowClient, str]:
    """The registry client and tracking URI of the project."""
    uri = resolve_tracking_uri(root, configured=params.tracking.uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri), uri


def champion_version(client: MlflowClient) -> int:
    """The version holding ``tradepipe-agent@champion``."""
    version = champion(client, AGENT_MODEL)
    if version is None:
        raise TradingError(f"{AGENT_MODEL} has no champion: run the pipeline until register promotes one")
    return int(version.version)


def open_desk(root: Path, params: Params, bars: pd.DataFrame | None = None, store_url: str | None = None,
              broker_url: str | None = None) -> Trader:
    """A :class:`Trader` on the project's bars, trade store and paper broker, loading policies verified."""
    bars = load_bars(root) if bars is None else bars
    closes = bars.set_index(["symbol", "timestamp"])["close"]
    client, uri = registry_policy(root, params)

    def quote(symbol: str, bar: pd.Timestamp) -> float:
        return float(closes.get((symbol, bar), float("nan")))

    def load(name: str, version: int) -> TradingPolicy:
        policy = getattr(load_verified(client, name, str(version), uri).unwrap_python_model(), "policy", None)
        if not isinstance(policy, TradingPolicy):
            raise TradingError(f"models:/{name}/{version} is not a trading policy")
        return policy

    broker = SimulatedBroker(broker_url or f"sqlite:///{(root / PAPER_BROKER_DB).resolve()}", params.costs.rate, quote)
    return Trader(TradeStore(store_url or db_url(root, params.trading)), broker, bars, params, load)
