"""Stateful decisions: ``POST /v1/accounts/{account}/bars`` and ``GET /v1/accounts/{account}``.

A client sends only the new bar(s) of the account's universe; the server adds them to the bars it holds (the
project's bars plus ``live_bars.csv``, rebuilt on start), steps the account over every bar up to the newest one
sent, with the same code path as ``tradepipe trade step`` (recorded in the trade store, fills at the paper broker;
the account's market state kept in memory between bars, ``trading.decision.LiveMarket``) and answers with
the decision: the target book from the account's stored book and risk state. Steps are serialized (in each step
worker with ``--step-workers``, see :mod:`tradepipe.serving.workers`, the newest bar's market rows computed here
meanwhile); the account gauges of ``/metrics`` are updated after each one.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask

from tradepipe.serving.limits import MAX_MESSAGE, read_body, truncate
from tradepipe.serving.metrics import AccountSnapshot, ServingMetrics
from tradepipe.serving.schemas import SignalsRequest, Weight
from tradepipe.serving.threads import FairLock, match_torch_threads
from tradepipe.serving.workers import RowsAhead, StepWorkerError, StepWorkers
from tradepipe.trading import accounts
from tradepipe.trading.decision import Rows
from tradepipe.trading.desk import record_bars
from tradepipe.trading.posted import PostedBars
from tradepipe.trading.step import AccountBook, MarketAhead, StepResult, Trader
from tradepipe.trading.store import now_utc, utc
from tradepipe.trading.tables import Account, Equity

__all__ = ["AccountDecision", "accounts_router"]

log = logging.getLogger(__name__)
_BARS_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/SignalsRequest"}}}}}
AccountName = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class StepOutcome(BaseModel):
    bar: datetime
    status: str
    message: str


class AccountDecision(BaseModel):
    """What the new bars did (one step each) and the account's target book after the newest decision."""

    account: str
    model_name: str
    model_version: int
    steps: list[StepOutcome]
    as_of: datetime | None
    weights: list[Weight]
    halted: bool
    ood_score: float | None = None  # the OOD guard's score of the newest decided bar (None: not scored)
    guard: str | None = None        # "hold" or "cash" when the guard flagged that bar, else None


def accounts_router(root: Path, trader: Trader, metrics: ServingMetrics, authorized: Any,
                    max_body_bytes: int, workers: StepWorkers | None = None) -> APIRouter:
    """The account endpoints over ``trader`` (see the module doc); ``authorized`` is the app's token dependency.
    With ``workers`` the steps run there (``trader`` records the posted bars and answers the book queries)."""
    router = APIRouter(dependencies=[Depends(authorized)])
    lock = FairLock()  # the trader's (steps, bars): first come, first served
    stepper = ThreadPoolExecutor(1, thread_name_prefix="account-steps")  # steps in this process, in the order they came

    @router.post("/v1/accounts/{account}/bars", response_model=AccountDecision, openapi_extra=_BARS_BODY)
    async def post_bars(account: AccountName, request: Request) -> Response:
        """Add the new bars and step the account over each (body: a SignalsRequest of the new bars only); the
        answer is an AccountDecision, serialized once (not validated again on the way out)."""
        raw = await read_body(request, max_body_bytes)
        try:
            bars = SignalsRequest.model_validate_json(raw).posted()
        except ValidationError as exc:
            raise HTTPException(422, truncate(str(exc.errors()[0]["msg"]), MAX_MESSAGE)) from exc
        now, as_of = pd.Timestamp.now(tz="UTC"), max(bars.timestamps)
        # the account steps through the newest bar it was sent; the book after it, as kept by the trader
        try:
            if workers is None:  # on a thread of its own (a cheaper hop than AnyIO's thread pool)
                results, book = await asyncio.get_running_loop().run_in_executor(stepper, _step_here, account, bars,
                                                                                 as_of, now)
            else:  # recorded here, stepped in the account's worker (awaited on the event loop), rows computed here
                with lock:
                    workers.add_bars(_record(account, bars))  # before any step that needs them, every worker has them
                    ahead = trader.market_ahead(account, as_of)
                results, book = await workers.step_through(account, as_of, now,
                                                           _rows_ahead(ahead) if ahead is not None else None)
        except HTTPException:
            raise
        except Exception as exc:  # the reason (paths, SQL) in the server log only; the client gets its class
            log.error("account %s: the step failed: %s", account, exc, exc_info=workers is None)
            kind = exc.kind if isinstance(exc, StepWorkerError) else type(exc).__name__
            raise HTTPException(500, f"the step of account {account!r} failed ({kind}; the server log has the "
                                     "reason): the bars stepped before it stay committed, and posting the bars again "
                                     "steps the rest") from exc
        answer = _answer(account, results, book)
        if workers is not None:  # bars held long for a worker not stepping go to it once the answer has gone out
            answer.background = BackgroundTask(workers.flush)
        return answer

    @router.get("/v1/accounts/{account}")
    def get_account(account: AccountName) -> dict[str, Any]:
        """The account's book: positions, weights, cash, equity, drawdown, last orders and events."""
        with lock:
            return _status(account).to_json()

    def _record(account: str, bars: PostedBars) -> PostedBars:
        """Add ``bars`` to the trader and the live-bars log (the caller holds ``lock``); the new ones."""
        if not trader.has_account(account):
            raise HTTPException(404, f"no paper account {account!r}: open it with `tradepipe trade open`")
        try:
            return record_bars(root, trader, bars)
        except ValueError as exc:
            raise HTTPException(409, truncate(str(exc), MAX_MESSAGE)) from exc

    def _rows_ahead(ahead: MarketAhead) -> RowsAhead:
        """The account's next market rows, computed on the steps' thread while its worker steps (promised to the
        worker when this trader's state of the key is one bar behind; else only this state is brought up to date)."""
        async def compute() -> Rows | None:
            return await asyncio.get_running_loop().run_in_executor(stepper, _market_rows, ahead)
        return RowsAhead((ahead.key, ahead.bar) if ahead.ready and ahead.key is not None else None, compute)

    def _market_rows(ahead: MarketAhead) -> Rows | None:
        match_torch_threads()
        trader.policy(ahead.acct.model_name, ahead.acct.model_version)  # loaded once (seconds), not under the lock
        with lock:
            return trader.market_rows(ahead)

    def _step_here(account: str, bars: PostedBars, as_of: pd.Timestamp, now: pd.Timestamp
                   ) -> tuple[list[StepResult], AccountBook]:
        match_torch_threads()
        with lock:
            _record(account, bars)
            return trader.step_through(account, as_of, now)

    def _answer(account: str, results: list[StepResult], book: AccountBook) -> Response:
        """The step's metrics, then its answer (422 when a bar was refused); run on the event loop, one at a time."""
        for result in results:
            metrics.count_orders(account, "submitted", result.orders)
            metrics.count_orders(account, "filled", result.orders)
            metrics.count_orders(account, "rejected", result.rejected)
            if result.flagged:
                metrics.ood_flags.labels(account).inc()
        decision = _decision(book)
        metrics.record_account(AccountSnapshot(
            account=account, equity=book.equity, peak_equity=book.peak, gross_exposure=book.gross_exposure,
            cash=book.cash, halted=book.halted, last_decision_at=now_utc(), model_version=book.model_version))
        if results and decision.ood_score is not None:
            metrics.record_ood(decision.model_name, decision.ood_score)
        refused = [r for r in results if r.status == "refused"]
        if refused:
            raise HTTPException(422, truncate(refused[0].message, MAX_MESSAGE))
        steps = [StepOutcome(bar=r.bar.to_pydatetime(), status=r.status, message=r.message) for r in results]
        return Response(decision.model_copy(update={"steps": steps}).model_dump_json(), media_type="application/json")

    def _status(account: str) -> accounts.AccountStatus:
        with trader.store.transaction() as session:
            if session.get(Account, account) is None:
                raise HTTPException(404, f"no paper account {account!r}: open it with `tradepipe trade open`")
            last = session.scalar(sa.select(sa.func.max(Equity.bar)).where(Equity.account == account))
        return accounts.status(trader.store, account, trader.bars_at(utc(last)) if last is not None else trader.bars)

    return router


def _decision(book: AccountBook) -> AccountDecision:
    """The answer from the account's book: its newest decision's target (assets, then cash)."""
    row = book.decision
    weights = [Weight(symbol=s, weight=float(w)) for s, w in zip([*book.symbols, "CASH"], row.target, strict=True)] \
        if row is not None else []
    return AccountDecision(account=book.account, model_name=book.model_name, model_version=book.model_version,
                           steps=[], as_of=row.bar.to_pydatetime() if row else None, weights=weights,
                           halted=book.halted, ood_score=row.ood_score if row else None,
                           guard=row.guard if row else None)
