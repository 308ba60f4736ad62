"""Validation gate for canonical bars: Great Expectations suite, file reader and failure report."""

from tradepipe.validation.gate import validate_bars, write_data_docs
from tradepipe.validation.reader import BarsFileError, read_bars_file
from tradepipe.validation.report import Failure, ValidationReport

__all__ = [
    "BarsFileError",
    "Failure",
    "ValidationReport",
    "read_bars_file",
    "validate_bars",
    "write_data_docs",
]
