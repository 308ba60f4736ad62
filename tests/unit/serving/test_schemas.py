"""The request schema of POST /v1/signals: property tests of what it accepts and refuses, and its OpenAPI entry."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tradepipe.serving import create_app
from tradepipe.serving.schemas import EARLIEST, LATEST, MAX_SYMBOL_LENGTH, SignalsRequest

_price = st.floats(min_value=1e-6, max_value=1e12, allow_nan=False, allow_infinity=False) | st.integers(1, 10**9)
_time = st.datetimes(min_value=EARLIEST.replace(tzinfo=None), max_value=datetime(2199, 12, 31),
                     timezones=st.just(UTC))
_symbol = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=MAX_SYMBOL_LENGTH)
_bar = st.fixed_dictionaries({"timestamp": _time.map(lambda t: t.isoformat()), "symbol": _symbol, "close": _price},
                             optional={"open": _price, "high": _price, "low": _price,
                                       "volume": st.floats(0, 1e15) | st.integers(0, 10**12)})
_bad = st.sampled_from([("close", True), ("close", "123.5"), ("close", 0), ("close", -1.0), ("close", None),
                        ("volume", -1), ("volume", False), ("timestamp", "9018-01-01T00:00:00Z"),
                        ("timestamp", "1899-12-31T23:59:59Z"), ("timestamp", "2014-13-45"),
                        ("symbol", ""), ("symbol", "S" * (MAX_SYMBOL_LENGTH + 1)), ("extra", 1)])


@settings(max_examples=200, deadline=None)
@given(bars=st.lists(_bar, min_size=1, max_size=20))
def test_valid_bars_are_accepted_and_kept_exactly(bars: list[dict[str, Any]]) -> None:
    request = SignalsRequest.model_validate_json(json.dumps({"bars": bars}))
    frame = request.frame()
    assert len(frame) == len(bars)
    assert frame["close"].tolist() == [float(b["close"]) for b in bars]
    assert frame["symbol"].tolist() == [b["symbol"] for b in bars]
    assert all(EARLIEST <= ts < LATEST for ts in frame["timestamp"])
    for column in ("open", "high", "low", "volume"):
        if any(column in b for b in bars):
            got = frame[column].tolist()
            want = [float(b[column]) if column in b else math.nan for b in bars]
            assert all((math.isnan(g) and math.isnan(w)) or g == w for g, w in zip(got, want, strict=True))


@settings(max_examples=200, deadline=None)
@given(bars=st.lists(_bar, min_size=1, max_size=10), position=st.integers(0, 9), bad=_bad)
def test_one_bad_field_refuses_the_request_with_a_validation_error(bars: list[dict[str, Any]], position: int,
                                                                    bad: tuple[str, Any]) -> None:
    field, value = bad
    bars[position % len(bars)][field] = value
    with pytest.raises(ValidationError):
        SignalsRequest.model_validate_json(json.dumps({"bars": bars}))


def test_openapi_documents_the_signals_body(tmp_path: Path) -> None:
    app = create_app(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", token="t", poll_seconds=0)
    schema = TestClient(app).get("/openapi.json").json()  # the lifespan (model loading) is not entered
    body = schema["paths"]["/v1/signals"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SignalsRequest"}
    components = schema["components"]["schemas"]
    request = components["SignalsRequest"]
    assert request["required"] == ["bars"] and request["properties"]["bars"]["maxItems"] == 100_000
    assert request["properties"]["bars"]["items"] == {"$ref": "#/components/schemas/Bar"}
    assert set(components["Bar"]["required"]) == {"timestamp", "symbol", "close"}
