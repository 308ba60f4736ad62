"""Step workers: the accounts' trading steps in N processes, each owning the accounts dealt to it.

A step is Python on one core, so one process decides one account at a time. With ``tradepipe serve --step-workers
N`` (N > 1) the serving process keeps the HTTP front (token, body, validation, the posted bars recorded once in its
own trader and in the live-bars log) and hands each step to the worker owning the account (accounts are dealt to
the workers in turn as they first step, so a few accounts spread evenly): a process with its own
:class:`~tradepipe.trading.step.Trader` over the same trade store, paper broker and bars, sent every new bar (one
pipe per worker, in order: the bars recorded since a worker's last message travel with its next step, so a bar
reaches a worker before any step that needs it, and a bar costs no message of its own to a worker that is not
stepping; a worker sent no step for ``FLUSH_BARS`` postings gets them in one message, after an answer has gone
out). The front awaits each answer on its event loop (no thread waits on a pipe); a step whose request is cancelled
runs to its end, its answer read and dropped. Market states are kept per worker: accounts that share one share it
within their worker. A worker that dies is started again at its next step (it reads the books from the store; bars
from the files, then the pipe); one that cannot open its desk says why (in the log; the step answers 500 with the
error's class).

The front computes the newest bar's market rows (features, forecast, turbulence: a third of a step) while the worker
runs the first part of the step (bar checks, reconciliation, the broker's fills): the step's message promises them
(:class:`RowsAhead`) and they follow on a second pipe, so one decision takes both cores. The worker waits for promised
rows when it reaches them (drops the promise when none come: then it computes them itself, as it does for any bar
not promised).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradepipe.trading.decision import Rows
from tradepipe.trading.posted import PostedBars
from tradepipe.trading.step import AccountBook, StepResult, Trader

__all__ = ["RowsAhead", "StepWorkerError", "StepWorkers"]

log = logging.getLogger(__name__)
_READY, _FAILED = "ready", "failed"
# postings of new bars held for a worker not stepping (about 1 MB of 20-bar postings); then they go in one message
# of their own (its catching up, a few ms of another core, once in FLUSH_BARS answers rather than once in 64)
FLUSH_BARS = 1024
ROWS_WAIT_S = 30.0  # a worker waits this long at most for promised rows (then computes them itself)
Promise = tuple[tuple[object, ...], pd.Timestamp]  # (market key, bar)


@dataclass(frozen=True)
class RowsAhead:
    """Market rows the front computes while a worker steps: ``compute`` is awaited once the step is sent; ``promise``
    (the market key and bar of the rows; None: computed for the front's own state only) is told to the worker."""

    promise: Promise | None
    compute: Callable[[], Awaitable[Rows | None]]


class StepWorkerError(RuntimeError):
    """A step failed in its worker: ``kind`` is the exception's class there, the message its class and message."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Worker:
    """One worker process and the front's end of its pipe: ``send`` is serialized, one step is in flight (the
    steps wait their turn in the order they came, on the event loop: no thread waits for a worker)."""

    def __init__(self, root: Path, tracking_uri: str) -> None:
        self.root, self.tracking_uri = root, tracking_uri
        self.sending = threading.Lock()
        self.unsent: list[PostedBars] = []  # new bars for the worker, sent with its next message (under ``sending``)
        self.stepping: asyncio.Lock | None = None  # made on the serving event loop (``StepWorkers.start``)
        self.process: BaseProcess | None = None
        self.pipe: Connection | None = None
        self.rows: Connection | None = None  # the front's end of the rows pipe
        self.promised: Promise | None = None  # the last rows promised (a worker has them: not promised again)
        self.ready = False

    def start(self) -> None:
        """A new process (the pipe first: bars sent from now on reach it, bars recorded before are in the files)."""
        spawn = multiprocessing.get_context("spawn")
        front, back = spawn.Pipe()
        rows_in, rows_out = spawn.Pipe(duplex=False)
        process = spawn.Process(target=_work, args=(self.root, self.tracking_uri, back, rows_in), daemon=True,
                                name="tradepipe-step-worker")
        with self.sending:
            self.pipe, self.rows, self.promised, self.ready = front, rows_out, None, False
        process.start()
        back.close()
        rows_in.close()
        self.process = process

    def send(self, kind: str, payload: Any = None) -> None:
        """Send ``(kind, unsent bars, payload)``: the bars recorded since the last message go with it."""
        with self.sending:
            assert self.pipe is not None
            bars, self.unsent = self.unsent, []
            # to a dead worker nothing arrives: its next step starts a new one, which reads the bars from the files
            with contextlib.suppress(OSError):
                self.pipe.send((kind, bars, payload))

    def send_rows(self, promise: Promise, rows: Rows | None) -> None:
        """The promised rows (None: they will not come) on the rows pipe."""
        with self.sending:
            assert self.rows is not None
            with contextlib.suppress(OSError):
                self.rows.send((promise, rows))

    def add_bars(self, bars: PostedBars) -> None:
        """Hold new ``bars`` for the worker's next message."""
        with self.sending:
            self.unsent.append(bars)

    def flush(self) -> None:
        """Send the held bars in a message of their own when ``FLUSH_BARS`` postings or more are held."""
        with self.sending:
            full = len(self.unsent) >= FLUSH_BARS
        if full:
            self.send("bars")

    async def step(self, request: tuple[str, pd.Timestamp, pd.Timestamp], ahead: RowsAhead | None = None
                   ) -> tuple[list[StepResult], AccountBook]:
        """The worker's answer to ``request`` (with the rows ``ahead`` computed here meanwhile). A step whose caller
        gives up (its request cancelled) still runs to its end: its answer is read off the pipe (the next step reads
        its own) and the worker keeps its state."""
        assert self.stepping is not None, "StepWorkers.start was not called"
        await self.stepping.acquire()
        task = asyncio.get_running_loop().create_task(self._step_and_release(request, ahead))
        task.add_done_callback(_retrieved)
        return await asyncio.shield(task)

    async def _step_and_release(self, request: tuple[str, pd.Timestamp, pd.Timestamp], ahead: RowsAhead | None
                                ) -> tuple[list[StepResult], AccountBook]:
        assert self.stepping is not None
        try:
            return await self._step(request, ahead)
        finally:
            self.stepping.release()

    async def _step(self, request: tuple[str, pd.Timestamp, pd.Timestamp], ahead: RowsAhead | None
                    ) -> tuple[list[StepResult], AccountBook]:
        if self.process is None or not self.process.is_alive():
            await asyncio.to_thread(self._restart)
        try:
            return await self._ask(request, ahead)
        except (EOFError, OSError):  # it died mid-step: the store holds what it committed, a retry the rest
            await asyncio.to_thread(self._restart)
            return await self._ask(request, ahead)

    async def _ask(self, request: tuple[str, pd.Timestamp, pd.Timestamp], ahead: RowsAhead | None
                   ) -> tuple[list[StepResult], AccountBook]:
        if not self.ready:
            kind, why = await self._recv()  # the desk is open (or could not be)
            if kind == _FAILED:
                raise StepWorkerError(f"a step worker could not open the desk: {why[0]}: {why[1]}", why[0])
            self.ready = True
        promise = ahead.promise if ahead is not None and ahead.promise != self.promised else None
        self.send("step", (*request, promise))
        if ahead is not None:
            await self._ahead(ahead, promise)
        kind, answer = await self._recv()
        if kind == "error":
            raise StepWorkerError(f"{answer[0]}: {answer[1]}", answer[0])
        return answer

    async def _ahead(self, ahead: RowsAhead, promise: Promise | None) -> None:
        """Compute the rows ahead while the worker steps; send them when promised (None when computing failed)."""
        rows = None
        try:
            rows = await ahead.compute()
        except Exception as exc:  # the worker computes them itself; the front's state is rebuilt when next needed
            log.warning("the market rows ahead of a step failed (%s: %s): the worker computes them",
                        type(exc).__name__, exc)
        if promise is not None:
            self.send_rows(promise, rows)
            self.promised = promise

    async def _recv(self) -> tuple[str, Any]:
        """The worker's next message; the event loop waits for the pipe to be readable (a message, or its end)."""
        pipe = self.pipe
        assert pipe is not None
        if not pipe.poll():
            loop = asyncio.get_running_loop()
            readable = loop.create_future()

            def wake() -> None:
                if not readable.done():
                    readable.set_result(None)
            loop.add_reader(pipe.fileno(), wake)
            try:
                await readable
            finally:
                loop.remove_reader(pipe.fileno())
        message: tuple[str, Any] = pipe.recv()
        return message

    def _restart(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join(timeout=10)
        self.start()

    def stop(self) -> None:
        if self.process is None:
            return
        self.send("stop")
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=10)
        for pipe in (self.pipe, self.rows):
            if pipe is not None:
                pipe.close()


class StepWorkers:
    """``n`` step workers over the project at ``root`` (its params.yaml, trade store, paper broker and bars)."""

    def __init__(self, root: Path, tracking_uri: str, n: int) -> None:
        if n < 2:
            raise ValueError(f"step workers need n >= 2 (one steps in the serving process), got {n}")
        self.workers = [_Worker(root, tracking_uri) for _ in range(n)]
        self._owners: dict[str, int] = {}
        self._dealing = threading.Lock()

    def start(self) -> None:
        """Start every worker (each opens its desk in the background; a step waits for its worker's). Called on
        the event loop that will await the steps."""
        for worker in self.workers:
            worker.stepping = asyncio.Lock()  # first come, first served
            worker.start()

    def owner(self, account: str) -> int:
        """The index of the worker that steps ``account`` (the next in turn for an account not seen before)."""
        with self._dealing:
            return self._owners.setdefault(account, len(self._owners) % len(self.workers))

    def add_bars(self, bars: PostedBars) -> None:
        """Hand new ``bars`` (already recorded by the front) to every worker, for its next message."""
        if len(bars):
            for worker in self.workers:
                worker.add_bars(bars)

    def flush(self) -> None:
        """Send the bars held for workers that were sent no step for ``FLUSH_BARS`` postings (the account endpoint
        calls it after an answer has gone out: the message and the worker's catching up are off the requests' path)."""
        for worker in self.workers:
            worker.flush()

    async def step_through(self, account: str, as_of: pd.Timestamp, now: pd.Timestamp,
                           ahead: RowsAhead | None = None) -> tuple[list[StepResult], AccountBook]:
        """``Trader.step_through`` in the account's worker (``ahead``: rows computed here meanwhile)."""
        return await self.workers[self.owner(account)].step((account, as_of, now), ahead)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Mark the outcome of a step as seen: a caller that gave up never awaits it (a failed step fails again, and is
    logged, when its bars are posted again)."""
    if not task.cancelled():
        task.exception()


def _work(root: Path, tracking_uri: str, pipe: Connection, rows: Connection) -> None:
    """A worker's loop: open the desk, say so, then add bars and step accounts as told, in order."""
    import torch

    from tradepipe.config import load_params
    from tradepipe.trading.desk import open_desk
    from tradepipe.trading.store import Checkpointer

    torch.set_num_threads(1)
    try:
        trader = open_desk(root, load_params(root / "params.yaml"), tracking_uri=tracking_uri)
    except Exception as exc:  # said to the front, which fails the step with it (and logs it)
        pipe.send((_FAILED, (type(exc).__name__, str(exc))))
        raise
    checkpoints = Checkpointer(trader.engines())
    pipe.send((_READY, None))
    try:
        while True:
            try:
                kind, bars, payload = pipe.recv()
            except EOFError:  # the front is gone
                return
            promise = payload[-1] if kind == "step" else None
            if promise is not None:  # before the rows already here, which may be these
                key, bar = promise
                trader.bar_rows(key).promise(bar, functools.partial(_wait_rows, trader, rows, promise))
            while rows.poll():  # rows sent so far (this step's, maybe), kept before adding bars that may rebuild
                _put_rows(trader, rows.recv())
            if bars:  # in one go; bars the desk read from the live-bars log already are known: skipped
                posted = PostedBars.concat(bars)
                trader.add_bars(posted.take(np.isnan(trader.known_closes(posted))))
            if kind == "stop":
                return
            if kind == "step":
                account, as_of, now, _ = payload
                try:
                    pipe.send(("ok", trader.step_through(account, as_of, now)))
                except Exception as exc:  # answered: the front fails the request, the worker steps on
                    pipe.send(("error", (type(exc).__name__, str(exc))))
    finally:
        checkpoints.stop()
        trader.store.dispose()


def _put_rows(trader: Trader, message: tuple[Promise, Rows | None]) -> Promise:
    (key, bar), found = message
    trader.bar_rows(key).put(bar, found)
    return key, bar


def _wait_rows(trader: Trader, rows: Connection, promise: Promise) -> None:
    """Receive rows until the promised ones (the front sends them right after the step's message)."""
    try:
        while rows.poll(ROWS_WAIT_S):
            if _put_rows(trader, rows.recv()) == promise:
                return
    except EOFError:  # the front is gone: computed here
        return
    log.warning("no market rows came in %.0f s for the promised bar %s: computed here", ROWS_WAIT_S, promise[1])
