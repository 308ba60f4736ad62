"""Wire a project's paper-trading desk: its bars, the trade store, the simulated broker and the registry's policies."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from mlflow import MlflowClient
from tradepipe.agents.policy import TradingPolicy
from tradepipe.config import Params
from tradepipe.paths import BARS, LIVE_BARS, PAPER_BROKER_DB
from tradepipe.registry.provenance import load_verified
from tradepipe.registry.versions import AGENT_MODEL, champion
from tradepipe.runtime.tracking import resolve_tracking_uri
from tradepipe.trading.broker import SimulatedBroker
from tradepipe.trading.posted import PostedBars
from tradepipe.trading.step import Trader
from tradepipe.trading.store import TradeStore, db_url

__all__ = ["LIVE_BARS_LOG", "TradingError", "champion_version", "load_bars", "open_desk", "read_live_log",
           "record_bars", "registry_policy"]

# bars posted to the serving app's account endpoints, appended one line per bar (timestamp, symbol, close, open,
# high, low, volume; empty where absent): the log grows by a few hundred bytes a bar, nothing is rewritten
LIVE_BARS_LOG = Path("live_bars.csv")
_LOG_COLUMNS = ("timestamp", "symbol", "close", "open", "high", "low", "volume")


class TradingError(RuntimeError):
    """Paper trading cannot proceed; the message says what to do."""


def load_bars(root: Path) -> pd.DataFrame:
    """The project's canonical bars (``data/raw/bars.parquet``, written by ingest)."""
    path = root / BARS
    if not path.is_file():
        raise TradingError(f"{path} does not exist: run the pipeline first (`make run` or `dvc repro ingest`)")
    bars = pd.read_parquet(path)
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
    # bars posted to the serving app since, for the timestamps ingest has not (live_bars.parquet: the older format)
    posted = [pd.read_parquet(root / LIVE_BARS)] if (root / LIVE_BARS).is_file() else []
    if (root / LIVE_BARS_LOG).is_file():
        posted.append(read_live_log(root / LIVE_BARS_LOG))
    if posted:
        live = pd.concat(posted, ignore_index=True)
        live["timestamp"] = pd.to_datetime(live["timestamp"], utc=True)
        live = live.drop_duplicates(["timestamp", "symbol"], keep="first")
        bars = pd.concat([bars, live[live["timestamp"] > bars["timestamp"].max()]], ignore_index=True)
    return bars.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)


def record_bars(root: Path, trader: Trader, bars: PostedBars) -> PostedBars:
    """Add posted ``bars`` to ``trader`` and to the live-bars log; return the new ones (already known ones skipped).

    ValueError naming the bar when a known (timestamp, symbol) arrives with another close.
    """
    seen: set[tuple[object, object]] = set()
    for ts, symbol in zip(bars.timestamps, bars.symbols, strict=True):
        if (ts, symbol) in seen:
            raise ValueError(f"bar {symbol} at {ts.isoformat()} is sent twice")
        seen.add((ts, symbol))
    known = trader.known_closes(bars)
    close = bars.values["close"]
    clash = ~np.isnan(known) & (known != close)
    if clash.any():
        i = int(np.flatnonzero(clash)[0])
        raise ValueError(f"bar {bars.symbols[i]} at {bars.timestamps[i].isoformat()} is already known with close "
                         f"{known[i]}, not {close[i]}")
    new = bars.take(np.isnan(known))
    if len(new):
        _append_log(root / LIVE_BARS_LOG, new)
        trader.add_bars(new)
    return new


def _append_log(path: Path, bars: PostedBars) -> None:
    """Append posted ``bars`` to the live-bars log (a header first when the file is new)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = [bars.values[c].tolist() if c in bars.values else [None] * len(bars) for c in _LOG_COLUMNS[2:]]
    for ts, symbol, *values in zip(bars.timestamps, bars.symbols, *columns, strict=True):
        writer.writerow([ts.isoformat(), symbol, *("" if v is None or np.isnan(v) else repr(v) for v in values)])
    with path.open("a", encoding="utf-8", newline="") as f:
        if f.tell() == 0:
            f.write(",".join(_LOG_COLUMNS) + "\n")
        f.write(out.getvalue())  # closed: in the OS's hands, a killed process loses nothing


def read_live_log(path: Path) -> pd.DataFrame:
    """The bars of a live-bars log (canonical long form; a column no bar has is left out; an unfinished last line,
    from a process killed while appending, is skipped). ValueError naming the file and line on a malformed one."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete = lines[:-1]  # after the last newline: an unfinished line (or nothing)
    rows = list(csv.reader(complete))
    if not rows or tuple(rows[0]) != _LOG_COLUMNS:
        raise ValueError(f"{path}: line 1 must be the header {','.join(_LOG_COLUMNS)}")
    data: dict[str, list[object]] = {c: [] for c in _LOG_COLUMNS}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(_LOG_COLUMNS):
            raise ValueError(f"{path}: line {number} has {len(row)} fields, not {len(_LOG_COLUMNS)}")
        try:
            data["timestamp"].append(pd.Timestamp(row[0]))
            data["symbol"].append(row[1])
            for c, v in zip(_LOG_COLUMNS[2:], row[2:], strict=True):
                data[c].append(float(v) if v else np.nan)
        except ValueError as exc:
            raise ValueError(f"{path}: line {number}: {exc}") from exc
    frame = pd.DataFrame({"timestamp": pd.to_datetime(data["timestamp"], utc=True), "symbol": data["symbol"],
                          **{c: np.asarray(data[c], dtype=np.float64) for c in _LOG_COLUMNS[2:]}})
    optional = [c for c in _LOG_COLUMNS[3:] if frame[c].isna().all()]
    return frame.drop(columns=optional)


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
