"""Wire a project's paper-trading desk: its bars, the trade store, the simulated broker and the registry's policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlflow import MlflowClient
from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import Params
from tradepipe.core.io import write_parquet
from tradepipe.paths import BARS, LIVE_BARS, PAPER_BROKER_DB
from tradepipe.registry.provenance import load_verified
from tradepipe.registry.versions import AGENT_MODEL, champion
from tradepipe.runtime.tracking import resolve_tracking_uri
from tradepipe.trading.broker import SimulatedBroker
from tradepipe.trading.step import Trader
from tradepipe.trading.store import TradeStore, db_url

__all__ = ["TradingError", "champion_version", "load_bars", "open_desk", "record_bars", "registry_policy"]


class TradingError(RuntimeError):
    """Paper trading cannot proceed; the message says what to do."""


def load_bars(root: Path) -> pd.DataFrame:
    """The project's canonical bars (``data/raw/bars.parquet``, written by ingest)."""
    path = root / BARS
    if not path.is_file():
        raise TradingError(f"{path} does not exist: run the pipeline first (`make run` or `dvc repro ingest`)")
    bars = pd.read_parquet(path)
    if (root / LIVE_BARS).is_file():  # bars posted to the serving app since, for the timestamps ingest has not
        live = pd.read_parquet(root / LIVE_BARS)
        bars = pd.concat([bars, live[live["timestamp"] > bars["timestamp"].max()]], ignore_index=True)
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
    return bars.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)


def record_bars(root: Path, trader: Trader, bars: pd.DataFrame) -> pd.DataFrame:
    """Add ``bars`` to ``trader`` and to ``live_bars.parquet``; return the new rows (already known ones skipped).

    ValueError naming the bar when a known (timestamp, symbol) arrives with another close.
    """
    dup = bars.duplicated(["timestamp", "symbol"])
    if dup.any():
        row = bars[dup].iloc[0]
        raise ValueError(f"bar {row['symbol']} at {row['timestamp'].isoformat()} is sent twice")
    known = trader.known_closes(bars)
    clash = ~np.isnan(known) & (known != bars["close"].to_numpy(dtype=np.float64))
    if clash.any():
        i = int(np.flatnonzero(clash)[0])
        row = bars.iloc[i]
        raise ValueError(f"bar {row['symbol']} at {row['timestamp'].isoformat()} is already known with close "
                         f"{known[i]}, not {row['close']}")
    new = bars[np.isnan(known)]
    if len(new):
        trader.add_bars(new)
        live = root / LIVE_BARS
        kept = pd.read_parquet(live) if live.is_file() else new.iloc[:0]
        write_parquet(pd.concat([kept, new], ignore_index=True), live)
    return new


def registry_policy(root: Path, params: Params, tracking_uri: str | None = None) -> tuple[MlflowClient, str]:
    """The registry client and tracking URI of the project (``tracking_uri`` over $MLFLOW_TRACKING_URI and params)."""
    uri = resolve_tracking_uri(root, tracking_uri, configured=params.tracking.uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri), uri


def champion_version(client: MlflowClient) -> int:
    """The version holding ``tradepipe-agent@champion``."""
    version = champion(client, AGENT_MODEL)
    if version is None:
        raise TradingError(f"{AGENT_MODEL} has no champion: run the pipeline until register promotes one")
    return int(version.version)


def open_desk(root: Path, params: Params, bars: pd.DataFrame | None = None, store_url: str | None = None,
              broker_url: str | None = None, tracking_uri: str | None = None) -> Trader:
    """A :class:`Trader` on the project's bars, trade store and paper broker, loading policies verified."""
    bars = load_bars(root) if bars is None else bars
    client, uri = registry_policy(root, params, tracking_uri)

    def quote(symbol: str, bar: pd.Timestamp) -> float:
        return trader.close(symbol, bar)  # the trader's bars, new ones included

    def load(name: str, version: int) -> TradingPolicy:
        policy = getattr(load_verified(client, name, str(version), uri).unwrap_python_model(), "policy", None)
        if not isinstance(policy, TradingPolicy):
            raise TradingError(f"models:/{name}/{version} is not a trading policy")
        return policy

    broker = SimulatedBroker(broker_url or f"sqlite:///{(root / PAPER_BROKER_DB).resolve()}", params.costs.rate, quote)
    trader = Trader(TradeStore(store_url or db_url(root, params.trading)), broker, bars, params, load)
    return trader
