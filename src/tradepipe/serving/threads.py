"""Torch's thread count in the threads that answer requests.

``torch.set_num_threads`` (``tradepipe serve --torch-threads``) sets the OpenMP team size of the calling thread;
a request answered on a worker thread would otherwise run oneDNN's kernels (the forecaster's convolution) with
OpenMP's default team, one thread per core, whose threads spin after each of a decision's tiny calls and take the
CPU the next request needs (measured: 2 to 5 times the CPU a decision needs on a 2-core machine).
"""

from __future__ import annotations

import threading

import torch

__all__ = ["match_torch_threads"]

_applied = threading.local()


def match_torch_threads() -> None:
    """Give the calling thread torch's thread count (set once per thread, again when the count changes)."""
    threads = torch.get_num_threads()
    if getattr(_applied, "threads", None) != threads:
        torch.set_num_threads(threads)
        _applied.threads = threads
