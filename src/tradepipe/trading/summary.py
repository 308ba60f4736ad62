"""One line per paper account for `tradepipe status`, read from the project's trade store without creating it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from tradepipe.config import TradingParams, load_params
from tradepipe.trading.store import TradeStore, db_url, utc
from tradepipe.trading.tables import Account, Equity

__all__ = ["account_rows", "realized_returns"]


def _open(root: Path, trading: TradingParams) -> TradeStore | None:
    url = db_url(root, trading)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None  # no account was ever opened
    return TradeStore(url)


def realized_returns(root: Path, trading: TradingParams, model_name: str, version: int,
                     recent_bars: int) -> tuple[str, pd.Series] | None:
    """The realized per-bar returns (from recorded equity) of the paper account that traded ``version`` longest,
    over its last ``recent_bars`` bars on that version, with the account's name; None when none traded it."""
    store = _open(root, trading)
    if store is None:
        return None
    try:
        with store.transaction() as session:
            rows = session.execute(sa.select(Equity.account, Equity.bar, Equity.equity)
                                   .join(Account, Account.name == Equity.account)
                                   .where(Account.model_name == model_name, Equity.model_version == version)
                                   .order_by(Equity.account, Equity.bar)).fetchall()
    finally:
        store.dispose()
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=["account", "bar", "equity"])
    account = str(frame["account"].value_counts().idxmax())
    curve = frame[frame["account"] == account].set_index(frame.loc[frame["account"] == account, "bar"].map(utc))
    returns = curve["equity"].pct_change().dropna().tail(recent_bars)
    return account, returns.rename(account)


def account_rows(root: Path) -> list[dict[str, Any]]:
    """Each account's model, halted flag, last bar, equity, cash and drawdown (equity at its last processed bar)."""
    store = _open(root, load_params(root / "params.yaml").trading)
    if store is None:
        return []
    try:
        with store.transaction() as session:
            rows = []
            for acct in session.scalars(sa.select(Account).order_by(Account.name)):
                curve = list(session.scalars(sa.select(Equity.equity).where(Equity.account == acct.name)
                                             .order_by(Equity.bar)))
                last = session.scalars(sa.select(Equity).where(Equity.account == acct.name)
                                       .order_by(Equity.bar.desc()).limit(1)).first()
                equity = last.equity if last else acct.initial_cash
                peak = max([acct.initial_cash, *curve])
                rows.append({"account": acct.name, "model": f"{acct.model_name} v{acct.model_version}",
                             "halted": acct.halted, "last_bar": utc(last.bar).isoformat() if last else None,
                             "equity": equity, "cash": last.cash if last else acct.initial_cash,
                             "return": equity / acct.initial_cash - 1.0, "drawdown": 1.0 - equity / peak})
            return rows
    finally:
        store.dispose()
