"""Stage ingest: the configured source → canonical long bars (parquet) and a manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tradepipe.config import Params
from tradepipe.data.sources import load_source
from tradepipe.data.store import write_json, write_parquet
from tradepipe.stage import StageError, run_stage

BARS = Path("data/raw/bars.parquet")
BENCHMARK = Path("data/raw/benchmark.parquet")
MANIFEST = Path("data/raw/manifest.json")


def ingest(params: Params, root: Path) -> dict[str, float]:
    cfg = params.data
    try:
        bars = load_source(cfg.source, cfg.symbols or None, cfg.start, cfg.end)
    except ValueError as exc:
        raise StageError(f"params.yaml data: {exc}") from exc
    if bars.empty:
        raise StageError(f"source {cfg.source!r} has no bars between {cfg.start} and {cfg.end}; widen data.start/end")
    benchmark = load_source(cfg.benchmark, None, cfg.start, cfg.end) if cfg.benchmark else bars.iloc[:0]
    write_parquet(bars, root / BARS)
    write_parquet(benchmark, root / BENCHMARK)
    per_symbol = bars.groupby("symbol")["timestamp"].agg(["min", "max", "count"])
    manifest = {
        "source": cfg.source,
        "rows": len(bars),
        "sha256": hashlib.sha256((root / BARS).read_bytes()).hexdigest(),
        "symbols": {s: {"start": str(r["min"]), "end": str(r["max"]), "rows": int(r["count"])}
                    for s, r in per_symbol.iterrows()},
    }
    write_json(manifest, root / MANIFEST)
    return {"rows": float(len(bars)), "symbols": float(len(per_symbol)),
            "bars_per_symbol_min": float(per_symbol["count"].min())}


if __name__ == "__main__":
    run_stage("ingest", ingest, sections=())
