"""Stage ingest: the configured source → an append-only archive → canonical bars, benchmark and manifest.

DVC deletes a stage's outputs before it runs unless they are declared ``persist: true``. The archive
(``data/raw/archive/<source>.parquet``) is persistent, so a re-ingest sees what was ingested before and only
appends; ``bars.parquet`` is the selection (symbols, dates) of that archive the rest of the pipeline reads,
rebuilt each run. Values the source changed for stored bars are kept as stored and reported.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

import mlflow
from tradepipe.config import DataParams, Params
from tradepipe.core.io import write_json, write_parquet
from tradepipe.data.incremental import changes_record, describe, merge_bars
from tradepipe.data.sources import fetch, select
from tradepipe.paths import ARCHIVE, BARS, BENCHMARK, MANIFEST
from tradepipe.runtime.stage import StageError, console, run_stage


def archive_name(cfg: DataParams) -> str:
    """One archive per source; files, S3 and yfinance also key on where the data comes from."""
    if cfg.source in ("files", "s3", "yfinance"):
        where = json.dumps([cfg.path, cfg.s3.model_dump(), cfg.format.model_dump()], sort_keys=True)
        return f"{cfg.source}-{hashlib.sha256(where.encode()).hexdigest()[:10]}"
    return cfg.source


def ingest_into_archive(cfg: DataParams, root: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fetch, merge into the source's archive (appending only), and return the selected bars and a record."""
    try:
        incoming = fetch(cfg)
        if incoming.empty:
            raise ValueError(f"source {cfg.source!r} has no bars between {cfg.start} and {cfg.end}; "
                             "widen data.start/end")
        path = root / ARCHIVE / f"{archive_name(cfg)}.parquet"
        stored = pd.read_parquet(path) if path.exists() else None
        merge = merge_bars(stored, incoming)
    except ValueError as exc:
        raise StageError(f"params.yaml data (source {cfg.source!r}): {exc}") from exc
    if merge.appended:
        write_parquet(merge.bars, path)
    if len(merge.changes):
        console.print(f"[yellow]ingest: {len(merge.changes)} stored value(s) differ from source {cfg.source!r}; "
                      f"kept as stored, listed in {MANIFEST}[/]\n{merge.changes.head(10).to_string(index=False)}")
    symbols = cfg.symbols or sorted(incoming["symbol"].unique())
    bars = select(merge.bars, symbols, cfg.start, cfg.end, cfg.source)
    record = {"source": cfg.source, "archive": str(path.relative_to(root)), "appended_rows": merge.appended,
              "archive_rows": len(merge.bars), "changed_history": changes_record(merge.changes)}
    return bars, record


def ingest(params: Params, root: Path) -> dict[str, float]:
    cfg = params.data
    bars, record = ingest_into_archive(cfg, root)
    if cfg.benchmark:
        bench_cfg = cfg.model_copy(update={"source": cfg.benchmark, "symbols": []})
        benchmark, bench_record = ingest_into_archive(bench_cfg, root)
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
