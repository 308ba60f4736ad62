"""Validation gate for canonical bars: Great Expectations suite and failure report (files are read by ``data``)."""

from tradepipe.validation.gate import validate_bars, write_data_docs
from tradepipe.validation.report import Failure, ValidationReport

__all__ = [
    "Failure",
    "ValidationReport",
    "validate_bars",
    "write_data_docs",
]
