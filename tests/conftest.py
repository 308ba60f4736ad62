"""Shared fixtures: small slices of the real bundled data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tradepipe.config import Params, load_params
from tradepipe.data.sources import load_source

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def bars() -> pd.DataFrame:
    """Four real stocks, 2010-2013: long enough for every indicator's warm-up."""
    return load_source("skfolio_sp500", ["AAPL", "JPM", "KO", "XOM"], "2010-01-01", "2013-12-31")
