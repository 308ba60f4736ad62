"""The append-only archive of a source: one parquet per source (and location), merged with each fetch.

A re-ingest sees what was ingested before and only appends; values the source changed for stored bars are
kept as stored and reported. The bars the pipeline reads are the selection (symbols, dates) of the archive.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tradepipe.config import DataParams
from tradepipe.core.io import write_parquet
from tradepipe.data.incremental import changes_record, merge_bars
from tradepipe.data.sources import fetch, select

__all__ = ["Ingested", "archive_name", "ingest_into_archive"]


@dataclass(frozen=True)
class Ingested:
    """The selected bars, the manifest record of the ingest, and the stored values the source changed."""

    bars: pd.DataFrame
    record: dict[str, Any]
    changes: pd.DataFrame


def archive_name(cfg: DataParams) -> str:
    """One archive per source; files, S3 and yfinance also key on where the data comes from."""
    if cfg.source in ("files", "s3", "yfinance"):
        where = json.dumps([cfg.path, cfg.s3.model_dump(), cfg.format.model_dump()], sort_keys=True)
        return f"{cfg.source}-{hashlib.sha256(where.encode()).hexdigest()[:10]}"
    return cfg.source


def ingest_into_archive(cfg: DataParams, archive_dir: Path, root: Path) -> Ingested:
    """Fetch, merge into the source's archive under ``archive_dir`` (appending only), select the bars.

    ValueError (naming the source) when the source has no bars in the range or its bars are inconsistent.
    The record names the archive relative to ``root``.
    """
    incoming = fetch(cfg)
    if incoming.empty:
        raise ValueError(f"source {cfg.source!r} has no bars between {cfg.start} and {cfg.end}; widen data.start/end")
    path = archive_dir / f"{archive_name(cfg)}.parquet"
    stored = pd.read_parquet(path) if path.exists() else None
    merge = merge_bars(stored, incoming)
    if merge.appended:
        write_parquet(merge.bars, path)
    symbols = cfg.symbols or sorted(incoming["symbol"].unique())
    bars = select(merge.bars, symbols, cfg.start, cfg.end, cfg.source)
    record = {"source": cfg.source, "archive": str(path.relative_to(root)), "appended_rows": merge.appended,
              "archive_rows": len(merge.bars), "changed_history": changes_record(merge.changes)}
    return Ingested(bars, record, merge.changes)
