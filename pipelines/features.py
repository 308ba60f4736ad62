"""Stage features: causal TA-Lib indicators, returns, volatility, ranks, sentiment; the label apart."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import mlflow
from tradepipe.config import Params
from tradepipe.core.io import write_parquet
from tradepipe.features import build_features, build_labels, feature_columns, indicator_names
from tradepipe.paths import BARS, FEATURES, LABELS
from tradepipe.runtime.stage import StageError, console, run_stage


def features(params: Params, root: Path) -> dict[str, float]:
    fp = params.features
    bars = pd.read_parquet(root / BARS)
    try:
        feats = build_features(bars, fp)
    except (ValueError, OSError) as exc:  # OSError: a file the features read (headlines) is missing or unreadable
        where = f" (features.sentiment.path {fp.sentiment.path})" if isinstance(exc, OSError) else ""
        raise StageError(f"params.yaml features{where}: {exc}") from exc
    indicators = indicator_names(fp)
    kind = "OHLCV" if fp.ohlcv else "close-only"
    console.print(f"features: source {params.data.source!r} → {kind} indicators ({len(indicators)}): "
                  + ", ".join(indicators) + ("" if fp.sentiment.path else "; sentiment off (no headlines)"))
    labels = build_labels(bars, fp.label_horizon)
    write_parquet(feats, root / FEATURES)
    write_parquet(labels, root / LABELS)
    columns = feature_columns(fp)
    mlflow.log_dict({"features": columns, "indicators": indicators, "ohlcv": bool(fp.ohlcv)},
                    "features/feature_columns.json")
    complete = feats[columns].notna().all(axis=1)
    return {"rows": float(len(feats)), "features": float(len(columns)), "indicators": float(len(indicators)),
            "ohlcv": float(bool(fp.ohlcv)), "sentiment": float(bool(fp.sentiment.path)),
            "complete_rows": float(complete.sum())}


if __name__ == "__main__":
    run_stage("features", features)
