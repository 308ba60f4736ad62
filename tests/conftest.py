"""Shared fixtures: small slices of the real bundled data."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pandas as pd
import pytest

from tests import ROOT
from tradepipe.config import Params
from tradepipe.data.sources import load_source
from tradepipe.runtime.params import stage_params

pytest_plugins = ["tests.fixtures.policies", "tests.fixtures.postgres"]


_SESSION_TRACKING_ENV = os.environ.get("MLFLOW_TRACKING_URI")  # as the session found it, before any test


def _reset_tracking_uri() -> None:
    import mlflow

    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # MLflow's own "unset" (it also clears the variable)
    if _SESSION_TRACKING_ENV is not None:
        os.environ["MLFLOW_TRACKING_URI"] = _SESSION_TRACKING_ENV


@pytest.fixture(autouse=True)
def _mlflow_tracking_uri_restored() -> Iterator[None]:
    """Each test starts and ends with MLflow's tracking URI as the session found it: ``mlflow.set_tracking_uri``
    also writes $MLFLOW_TRACKING_URI, which outranks params.yaml, so one test's store (or a session fixture's)
    would leak into the next test."""
    _reset_tracking_uri()
    yield
    _reset_tracking_uri()


@pytest.fixture(scope="session")
def params() -> Params:
    return stage_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def bars() -> pd.DataFrame:
    """Four real stocks, 2010-2013: long enough for every indicator's warm-up."""
    return load_source("skfolio_sp500", ["AAPL", "JPM", "KO", "XOM"], "2010-01-01", "2013-12-31")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto's server mode) speaking real HTTP on loopback."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
