"""Stage ingest: the configured source → an append-only archive → canonical bars, benchmark and manifest.

DVC deletes a stage's outputs before it runs unless they are declared ``persist: true``. The archive
(``data/raw/archive/<source>.parquet``, see ``tradepipe.data.archive``) is persistent, so a re-ingest only
appends; ``bars.parquet`` is the selection of that archive the rest of the pipeline reads, rebuilt each run.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from tradepipe.config import DataParams, Params
from tradepipe.core.io import write_json, write_parquet
from tradepipe.data.archive import Ingested, ingest_into_archive
from tradepipe.data.incremental import describe
from tradepipe.paths import ARCHIVE, BARS, BENCHMARK, MANIFEST
from tradepipe.runtime.stage import StageError, console, run_stage


def _ingest(cfg: DataParams, root: Path) -> Ingested:
    """The source's bars through its archive; bad data is a StageError naming the source, changed history is shown."""
    try:
        ingested = ingest_into_archive(cfg, root / ARCHIVE, root)
    except ValueError as exc:
        raise StageError(f"params.yaml data (source {cfg.source!r}): {exc}") from exc
    if len(ingested.changes):
        console.print(f"[yellow]ingest: {len(ingested.changes)} stored value(s) differ from source {cfg.source!r}; "
                      f"kept as stored, listed in {MANIFEST}[/]\n{ingested.changes.head(10).to_string(index=False)}")
    return ingested


def ingest(params: Params, root: Path) -> dict[str, float]:
    cfg = params.data
    main = _ingest(cfg, root)
    bars, record = main.bars, main.record
    if cfg.benchmark:
        bench = _ingest(cfg.model_copy(update={"source": cfg.benchmark, "symbols": []}), root)
        benchmark, bench_record = bench.bars, bench.record
    else:
        benchmark, bench_record = bars.iloc[:0], {}
    write_parquet(bars, root / BARS)
    write_parquet(benchmark, root / BENCHMARK)
    write_json({**record, **describe(bars), "benchmark": {**bench_record, **describe(benchmark)}}, root / MANIFEST)
    mlflow.log_artifact(str(root / MANIFEST), "ingest")
    counts = bars.groupby("symbol").size()
    return {"rows": float(len(bars)), "symbols": float(len(counts)), "bars_per_symbol_min": float(counts.min()),
            "appended_rows": float(record["appended_rows"]),
            "changed_values": float(record["changed_history"]["count"])}


if __name__ == "__main__":
    run_stage("ingest", ingest)
