"""Threads that answer requests: torch's thread count in each, and a first-come first-served lock.

``torch.set_num_threads`` (``tradepipe serve --torch-threads``) sets the OpenMP team size of the calling thread;
a request answered on a worker thread would otherwise run oneDNN's kernels (the forecaster's convolution) with
OpenMP's default team, one thread per core, whose threads spin after each of a decision's tiny calls and take the
CPU the next request needs (measured: 2 to 5 times the CPU a decision needs on a 2-core machine).
"""

from __future__ import annotations

import threading
from collections import deque

import torch

__all__ = ["FairLock", "match_torch_threads"]

_applied = threading.local()


def match_torch_threads() -> None:
    """Give the calling thread torch's thread count (set once per thread, again when the count changes)."""
    threads = torch.get_num_threads()
    if getattr(_applied, "threads", None) != threads:
        torch.set_num_threads(threads)
        _applied.threads = threads


class FairLock:
    """A lock granted in the order it was asked for: ``threading.Lock`` wakes any of its waiters, so under load one
    request could wait out many steps while later ones pass it. Released by its holder, it is handed to the oldest
    waiter (it never falls free while one waits)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append(gate)
        gate.acquire()  # opened by the release that hands the lock over

    def release(self) -> None:
        with self._guard:
            if not self._held:
                raise RuntimeError("release of an unheld FairLock")
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._held = False

    @property
    def waiting(self) -> int:
        """Threads waiting for the lock."""
        return len(self._waiters)

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
