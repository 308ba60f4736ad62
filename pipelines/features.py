"""Stage features: causal TA-Lib indicators, returns and volatility; the forward-return label apart."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tradepipe.config import Params
from tradepipe.data.store import write_parquet
from tradepipe.features import build_features, build_labels
from tradepipe.stage import StageError, run_stage

BARS = Path("data/raw/bars.parquet")
FEATURES = Path("data/features/features.parquet")
LABELS = Path("data/features/labels.parquet")


def features(params: Params, root: Path) -> dict[str, float]:
    bars = pd.read_parquet(root / BARS)
    try:
        feats = build_features(bars, params.features)
    except ValueError as exc:
        raise StageError(f"params.yaml features: {exc}") from exc
    labels = build_labels(bars, params.features.label_horizon)
    write_parquet(feats, root / FEATURES)
    write_parquet(labels, root / LABELS)
    columns = [c for c in feats.columns if c not in ("timestamp", "symbol")]
    complete = feats[columns].notna().all(axis=1)
    return {"rows": float(len(feats)), "features": float(len(columns)), "complete_rows": float(complete.sum())}


if __name__ == "__main__":
    run_stage("features", features, sections=("features",))
