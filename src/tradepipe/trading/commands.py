"""``tradepipe trade``: open paper accounts, step them bar by bar, replay a range against the backtest, inspect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import pandas as pd
import sqlalchemy as sa
import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tradepipe.config import ConfigError, Params, load_params
from tradepipe.registry.provenance import ProvenanceError
from tradepipe.registry.versions import AGENT_MODEL
from tradepipe.trading import accounts
from tradepipe.trading.desk import TradingError, champion_version, open_desk, registry_policy
from tradepipe.trading.replay import replay as run_replay
from tradepipe.trading.step import Trader
from tradepipe.trading.tables import Account

trade_app = typer.Typer(help="Paper trading: the champion trades accounts bar by bar (trade store + paper broker).",
                        no_args_is_help=True)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
ROOT = typer.Option(Path("."), help="Project root (holds params.yaml and data/raw/bars.parquet).")
OUT = typer.Option(Path("reports/trading"), help="Folder for the CSV files (one subfolder per account).")
REFUSED = 3  # exit status of a step that refused a bar


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _date(text: str | None, what: str) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        return pd.Timestamp(text).tz_localize("UTC") if pd.Timestamp(text).tzinfo is None else pd.Timestamp(text)
    except ValueError:
        _fail(f"{what} {text!r} is not a date (use YYYY-MM-DD)", 2)


def _desk(root: Path) -> tuple[Params, Trader]:
    # a decision's forward passes are tiny: one torch thread (OpenMP's default team, one per core, spins between
    # them, measured +30% CPU a step on 2 cores for the same latency)
    torch.set_num_threads(1)
    try:
        params = load_params(root / "params.yaml")
        return params, open_desk(root, params)
    except (ConfigError, TradingError) as exc:
        _fail(str(exc), 2)


@trade_app.command("open")
def open_(name: str = typer.Argument(..., help="Account name."),
          cash: float = typer.Option(..., help="Starting cash."),
          start: str = typer.Option(None, help="First bar to decide at (default: the newest bar)."),
          version: int = typer.Option(None, help=f"{AGENT_MODEL} version (default: the champion)."),
          root: Path = ROOT) -> None:
    """Open a paper account trading the champion (or --version), funded with --cash at the paper broker."""
    params, trader = _desk(root)
    try:
        client, _ = registry_policy(root, params)
        version = version or champion_version(client)
        policy = trader.policy(AGENT_MODEL, version)
        first = _date(start, "--start") or trader.timestamps[-1]
        accounts.open_account(trader.store, name, cash, AGENT_MODEL, version, policy.spec.symbols,
                              trader.timestamps, first, params.trading.warmup_bars, "simulated")
        trader.broker.open_account(name, cash)  # type: ignore[attr-defined]
    except (ValueError, TradingError, ProvenanceError) as exc:
        _fail(str(exc), 2)
    console.print(f"opened [bold]{escape(name)}[/] with {cash:,.2f} on {AGENT_MODEL} v{version}")


@trade_app.command()
def step(account: str = typer.Option(None, help="Account to step (default: every account)."),
         as_of: str = typer.Option(None, "--as-of", help="Process bars up to this date (default: every new bar)."),
         now: str = typer.Option(None, help="Wall clock for the stale-data check (default: today)."),
         root: Path = ROOT) -> None:
    """Process every new bar of the account(s), one step per bar, in order (safe to rerun)."""
    _, trader = _desk(root)
    with trader.store.transaction() as session:
        names = [account] if account else list(session.scalars(sa.select(Account.name).order_by(Account.name)))
    if not names:
        console.print("no paper accounts to step: `tradepipe trade open NAME --cash 1000000` opens one")
    clock = _date(now, "--now") or pd.Timestamp.now(tz="UTC")
    refused = False
    for name in names:
        try:
            bars = trader.pending_bars(name, _date(as_of, "--as-of"))
            if not bars:
                console.print(f"{escape(name)}: no new bar to process (already up to date)")
            for bar in bars:
                result = trader.step(name, bar, clock)
                style = {"traded": "green", "halted": "yellow", "refused": "red"}.get(result.status, "")
                console.print(f"[{style}]{result.status}[/] {escape(result.message)}")
                if result.status == "refused":
                    refused = True
                    break
        except (KeyError, TradingError, ProvenanceError) as exc:
            _fail(str(exc).strip("'\""), 2)
    if refused:
        raise typer.Exit(REFUSED)


@trade_app.command()
def replay(start: str = typer.Option(..., help="First bar (YYYY-MM-DD)."),
           end: str = typer.Option(..., help="Last bar (YYYY-MM-DD)."),
           cash: float = typer.Option(1_000_000.0, help="Starting cash."),
           version: int = typer.Option(None, help=f"{AGENT_MODEL} version (default: the champion)."),
           as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
           root: Path = ROOT) -> None:
    """Trade --start to --end on a fresh scratch account; compare it with the backtest engine on the same bars."""
    params, trader = _desk(root)
    try:
        client, _ = registry_policy(root, params)
        version = version or champion_version(client)
        first, last = _date(start, "--start"), _date(end, "--end")
        assert first is not None and last is not None
        policy = trader.policy(AGENT_MODEL, version)
        comparison = run_replay(root, params, policy, version, first, last, cash, trader.bars)
    except (ValueError, TradingError, ProvenanceError) as exc:
        _fail(str(exc), 2)
    summary = {"model": f"{AGENT_MODEL}/{version}", "cash": cash, **comparison.summary()}
    if as_json:
        console.print_json(json.dumps(summary))
        return
    table = Table(title=f"paper vs backtest engine, {summary['start'][:10]} to {summary['end'][:10]}")
    table.add_column("")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:.3e}" if isinstance(value, float) and "diff" in key else str(value))
    console.print(table)


@trade_app.command()
def status(account: str = typer.Argument(None, help="Account (default: every account)."),
           as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
           root: Path = ROOT) -> None:
    """The book: positions, weights, cash, equity, drawdown, last orders and events, model, halted or not."""
    _, trader = _desk(root)
    with trader.store.transaction() as session:
        names = [account] if account else list(session.scalars(sa.select(Account.name).order_by(Account.name)))
    out = []
    for name in names:
        try:
            out.append(accounts.status(trader.store, name, trader.bars))
        except KeyError as exc:
            _fail(str(exc).strip("'\""), 2)
    if as_json:
        console.print_json(json.dumps([s.to_json() for s in out], default=str))
        return
    if not out:
        console.print("no paper accounts: `tradepipe trade open NAME --cash 1000000`")
    for s in out:
        flag = "[bold red]HALTED[/]" if s.halted else "[green]trading[/]"
        console.print(f"[bold]{escape(s.name)}[/] {flag} · {escape(s.model)} · last bar "
                      f"{s.last_bar.date() if s.last_bar is not None else 'none yet'} · equity {s.equity:,.2f} · "
                      f"cash {s.cash:,.2f} · drawdown {s.drawdown:.2%}")
        book = Table("symbol", "qty", "price", "value", "weight", title="positions")
        for row in s.positions.itertuples():
            book.add_row(str(row.symbol), f"{row.qty:,.4f}", f"{row.price:,.2f}", f"{row.value:,.2f}",
                         f"{row.weight:.2%}")
        console.print(book)
        if len(s.orders):
            orders = Table("bar", "symbol", "qty", "price", "status", "reason", title="last orders")
            for o in s.orders.itertuples():
                orders.add_row(str(o.bar)[:10], str(o.symbol), f"{o.qty:,.4f}", f"{o.price:,.2f}", str(o.status),
                               escape(_text(o.reason)))
            console.print(orders)
        if len(s.events):
            events = Table("when", "kind", "rule", "message", title="last events")
            for e in s.events.itertuples():
                events.add_row(str(e.created_at)[:19], str(e.kind), _text(e.rule), escape(str(e.message)))
            console.print(events)


def _text(value: object) -> str:
    """A nullable column's cell as text: "" for None and NaN (a frame turns a column's None into NaN)."""
    return "" if pd.isna(value) else str(value)


def _kill_switch(root: Path, account: str, reason: str, engage: bool) -> None:
    _, trader = _desk(root)
    try:
        (accounts.halt if engage else accounts.resume)(trader.store, account, reason)
    except KeyError as exc:
        _fail(str(exc).strip("'\""), 2)
    state = "[bold red]halted[/]" if engage else "[green]resumed[/]"
    console.print(f"{escape(account)}: {state} ({escape(reason)})")


@trade_app.command()
def halt(account: str = typer.Argument(..., help="Account."),
         reason: str = typer.Option(..., help="Why (recorded as an event)."), root: Path = ROOT) -> None:
    """Engage the kill switch: no order leaves until `resume`."""
    _kill_switch(root, account, reason, engage=True)


@trade_app.command()
def resume(account: str = typer.Argument(..., help="Account."),
           reason: str = typer.Option("resumed by hand", help="Why (recorded as an event)."),
           root: Path = ROOT) -> None:
    """Release the kill switch: the next bar decides again (the bar after it trades)."""
    _kill_switch(root, account, reason, engage=False)


@trade_app.command()
def switch(version: int = typer.Argument(..., help=f"The new {AGENT_MODEL} version."), root: Path = ROOT) -> None:
    """Switch every paper account on the agent to VERSION at its next bar (deploy_champion runs this)."""
    _, trader = _desk(root)
    names = accounts.request_switch(trader.store, AGENT_MODEL, version)
    console.print(f"{len(names)} account(s) switch to v{version} at their next bar: {', '.join(names) or 'none'}")


@trade_app.command()
def history(account: str = typer.Argument(..., help="Account."),
            out: Path = OUT,
            root: Path = ROOT) -> None:
    """Export orders, fills, equity, decisions and events as CSV files."""
    _, trader = _desk(root)
    try:
        tables = accounts.history(trader.store, account)
    except KeyError as exc:
        _fail(str(exc).strip("'\""), 2)
    folder = out / account
    folder.mkdir(parents=True, exist_ok=True)
    for key, frame in tables.items():
        frame.to_csv(folder / f"{key}.csv", index=False)
        console.print(f"{folder / f'{key}.csv'}: {len(frame)} rows")
