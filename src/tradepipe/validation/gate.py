"""The validation gate: run the GX suite on canonical bars and report the verdict."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tradepipe.config import ValidateParams
from tradepipe.validation.derived import prepare
from tradepipe.validation.report import ValidationReport, report_from_result
from tradepipe.validation.suite import build_docs, run_suite


def validate_bars(bars: pd.DataFrame, params: ValidateParams, name: str = "bars") -> ValidationReport:
    """Validate canonical bars with the GX suite; the report's success is the GX verdict."""
    batch = prepare(bars, params.return_flag_column)
    return report_from_result(run_suite(batch, params, name), batch, name)


def write_data_docs(bars: pd.DataFrame, params: ValidateParams, out_dir: Path, name: str = "bars") -> Path:
    """Validate the bars and write GX Data Docs (HTML) into out_dir; return the path of index.html."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return build_docs(prepare(bars, params.return_flag_column), params, name, out_dir)
