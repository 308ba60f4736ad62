"""Stage validate: the Great Expectations suite on the ingested bars; a failing suite stops the pipeline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import mlflow
from tradepipe.config import Params
from tradepipe.core.io import write_json
from tradepipe.paths import BARS, VALIDATION_REPORT
from tradepipe.runtime.stage import StageError, run_stage
from tradepipe.validation import validate_bars, write_data_docs


def validate(params: Params, root: Path) -> dict[str, float]:
    bars = pd.read_parquet(root / BARS)
    report = validate_bars(bars, params.validate_, name=str(BARS))
    docs = write_data_docs(bars, params.validate_, root / VALIDATION_REPORT)
    mlflow.log_artifacts(str(docs.parent), "validation_report")
    write_json(report.to_dict(), root / VALIDATION_REPORT / "summary.json")
    if not report.success:
        raise StageError(f"{report.summary()}\nFull report: {docs}")
    return {"rows": float(report.n_rows), "expectations": float(report.evaluated),
            "failed": float(len(report.failures))}


if __name__ == "__main__":
    run_stage("validate", validate)
