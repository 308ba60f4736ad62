"""Independent fits as Ray tasks: each with its own CPU budget and seed, results in input order.

``run_tasks(fn, calls, seeds, pool)`` runs ``fn(*call, **shared)`` once per call. With ``pool.backend`` ``"ray"``
every call is a Ray task of ``pool.cpus_per_task`` CPUs, on a local Ray (``pool.cpus`` CPUs, default every core)
or on the cluster at ``pool.address`` (``host:6379`` of a ``ray start --head``, or ``ray://host:10001``); tasks
are spread over the cluster's nodes. With ``"serial"`` the same calls run one after another in this process.
Either way each call first seeds Python, NumPy and torch with its own seed, runs torch (and the BLAS pools) on
``cpus_per_task`` threads with deterministic algorithms, and its result travels through a pickle (Ray's object
store, or a local round trip), so the two backends give bit-identical results. Each result comes back with the
Ray node id it ran on (``"in-process"`` when serial) and its wall time, for the stage to record in MLflow.
"""

from __future__ import annotations

import os
import pickle
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import numpy as np

R = TypeVar("R")
IN_PROCESS = "in-process"  # the node id of a call run with Ray off
OBJECT_STORE_BYTES = 512 * 1024 * 1024  # a local Ray's object store (the fits ship megabytes, not gigabytes)


@dataclass(frozen=True)
class Pool:
    """Where the calls run: ``backend`` ``"ray"`` (local Ray on ``cpus`` CPUs, or the cluster at ``address``) or
    ``"serial"`` (this process, one after another); each call gets ``cpus_per_task`` CPUs (torch threads)."""

    backend: Literal["ray", "serial"] = "ray"
    address: str | None = None
    cpus: int | None = None
    cpus_per_task: int = 1

    def __post_init__(self) -> None:
        if self.backend not in ("ray", "serial"):
            raise ValueError(f"parallel.backend must be 'ray' or 'serial', got {self.backend!r}")
        if self.cpus_per_task < 1 or (self.cpus is not None and self.cpus < 1):
            raise ValueError(f"parallel.cpus and parallel.cpus_per_task must be >= 1, got cpus={self.cpus}, "
                             f"cpus_per_task={self.cpus_per_task}")


SERIAL = Pool(backend="serial")


@dataclass(frozen=True)
class Done(Generic[R]):
    """One call's result, the Ray node it ran on and its wall time in seconds."""

    value: R
    node: str
    seconds: float


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else IN_PROCESS  # a Ray task: its node


def _call(fn: Callable[..., Any], args: tuple[Any, ...], shared: Mapping[str, Any], seed: int,
          threads: int) -> tuple[Any, str, float]:
    """``fn(*args, **shared)`` seeded with ``seed`` on ``threads`` threads; the process's torch settings are
    restored after (a serial call runs in the caller's process)."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    start = time.perf_counter()
    try:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        with threadpool_limits(limits=threads):
            value = fn(*args, **shared)
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1])
    return value, _node_id(), time.perf_counter() - start


@contextmanager
def ray_connected(pool: Pool) -> Iterator[None]:
    """Ray for ``pool``: the one this process already joined, else the cluster at ``pool.address``, else a new
    local one on ``pool.cpus`` CPUs (every core by default); what this opened is shut down after."""
    import ray

    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if pool.address:
        ray.init(address=pool.address, log_to_driver=False)
    else:  # "local": a new Ray even where $RAY_ADDRESS names a cluster (parallel.address is the one switch)
        ray.init(address="local", num_cpus=pool.cpus or os.cpu_count() or 1, include_dashboard=False,
                 log_to_driver=False, object_store_memory=OBJECT_STORE_BYTES)
    try:
        yield
    finally:
        ray.shutdown()


def run_tasks(fn: Callable[..., R], calls: Sequence[tuple[Any, ...]], seeds: Sequence[int], pool: Pool = SERIAL,
              shared: Mapping[str, Any] | None = None,
              on_done: Callable[[int, Done[R]], None] | None = None) -> list[Done[R]]:
    """``fn(*calls[i], **shared)`` for each i, seeded with ``seeds[i]``, on ``pool``; the results in input order.

    ``shared`` (large inputs every call reads) is shipped once to Ray's object store. ``on_done(i, done)`` sees each
    result as it completes (in completion order). A call that raises stops the rest and its exception is raised
    here as it was raised in the call.
    """
    if len(seeds) != len(calls):
        raise ValueError(f"{len(calls)} calls but {len(seeds)} seeds: give one seed per call")
    common: Mapping[str, Any] = dict(shared or {})
    results: dict[int, Done[R]] = {}

    def finish(i: int, out: tuple[Any, str, float]) -> None:
        results[i] = Done(out[0], out[1], out[2])
        if on_done is not None:
            on_done(i, results[i])

    if pool.backend == "serial" or not calls:
        for i, (args, seed) in enumerate(zip(calls, seeds, strict=True)):
            value, _, seconds = _call(fn, args, common, seed, pool.cpus_per_task)
            finish(i, (pickle.loads(pickle.dumps(value)), IN_PROCESS, seconds))  # as Ray would ship it back
        return [results[i] for i in range(len(calls))]
    import ray

    with ray_connected(pool):
        task = ray.remote(num_cpus=pool.cpus_per_task, scheduling_strategy="SPREAD")(_call)
        shared_ref = ray.put(common)
        refs = {task.remote(fn, args, shared_ref, seed, pool.cpus_per_task): i
                for i, (args, seed) in enumerate(zip(calls, seeds, strict=True))}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                try:
                    out = ray.get(ready[0])
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    raise cause from None
                finish(refs[ready[0]], out)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
    return [results[i] for i in range(len(calls))]


def node_record(names: Sequence[str], done: Sequence[Done[Any]]) -> dict[str, Any]:
    """What ran where, for MLflow: one row per task (its name, Ray node id, seconds) and the distinct nodes."""
    tasks = [{"task": name, "node": d.node, "seconds": round(d.seconds, 3)} for name, d in zip(names, done,
                                                                                                strict=True)]
    return {"tasks": tasks, "nodes": sorted({d.node for d in done})}
