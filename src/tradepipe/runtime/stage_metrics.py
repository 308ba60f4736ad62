"""Stage runs as Prometheus metrics in a node-exporter textfile (``TRADEPIPE_METRICS_TEXTFILE_DIR``).

Stages are short processes that no Prometheus can scrape, so each run adds itself to
``<dir>/tradepipe_stages.prom``, which node-exporter's textfile collector exports:
``tradepipe_stage_runs_total{stage,status}`` (status ``succeeded`` or ``failed``) and
``tradepipe_stage_duration_seconds{stage}`` (the last run's wall time). The file is rewritten atomically
under a lock, so concurrent stages never lose a count. Unset directory: nothing is written. Metrics never fail a
stage: a directory that cannot be written is logged and skipped.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from tradepipe.settings import settings

__all__ = ["STAGE_TEXTFILE", "STATUSES", "record_stage_run", "stage_run_metrics"]

log = logging.getLogger(__name__)
STAGE_TEXTFILE = "tradepipe_stages.prom"
STATUSES = ("succeeded", "failed")
RUNS, DURATION = "tradepipe_stage_runs", "tradepipe_stage_duration_seconds"


def record_stage_run(directory: Path, stage: str, status: str, seconds: float) -> Path:
    """Add one run of ``stage`` with ``status`` to ``directory``'s textfile; return the file."""
    if status not in STATUSES:
        raise ValueError(f"stage status {status!r} is not one of {', '.join(STATUSES)}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STAGE_TEXTFILE
    with (directory / f".{STAGE_TEXTFILE}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs, durations = _read(path)
        runs[(stage, status)] = runs.get((stage, status), 0.0) + 1.0
        durations[stage] = seconds
        registry = CollectorRegistry()
        counter = Counter(RUNS, "Pipeline stage runs by outcome", ["stage", "status"], registry=registry)
        gauge = Gauge(DURATION, "Wall time of the stage's last run", ["stage"], registry=registry)
        for (name, outcome), total in sorted(runs.items()):
            counter.labels(name, outcome).inc(total)
        for name, value in sorted(durations.items()):
            gauge.labels(name).set(value)
        write_to_textfile(str(path), registry)  # temporary file, then rename
    return path


def _read(path: Path) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    runs: dict[tuple[str, str], float] = {}
    durations: dict[str, float] = {}
    if not path.exists():
        return runs, durations
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if sample.name == f"{RUNS}_total":
                runs[(sample.labels["stage"], sample.labels["status"])] = sample.value
            elif sample.name == DURATION:
                durations[sample.labels["stage"]] = sample.value
    return runs, durations


@contextmanager
def stage_run_metrics(stage: str) -> Iterator[None]:
    """Record the enclosed stage run (failed if it raises or exits non-zero) when the textfile directory is set."""
    directory = settings().metrics_textfile_dir
    start, status = time.monotonic(), "failed"
    try:
        yield
        status = "succeeded"
    except SystemExit as exc:
        status = "succeeded" if exc.code in (0, None) else "failed"
        raise
    finally:
        if directory is not None:
            try:
                record_stage_run(directory, stage, status, time.monotonic() - start)
            except OSError as exc:
                log.warning("stage %s: run not counted in %s (%s); check TRADEPIPE_METRICS_TEXTFILE_DIR",
                            stage, directory / STAGE_TEXTFILE, exc)
