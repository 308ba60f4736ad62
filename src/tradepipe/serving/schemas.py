"""Request and response bodies of the serving API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tradepipe.core.schema import OPTIONAL

Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
MAX_BARS = 100_000


class Bar(BaseModel):
    """One canonical bar; naive timestamps are read as UTC."""

    model_config = ConfigDict(extra="forbid")
    timestamp: datetime
    symbol: str = Field(min_length=1)
    close: Price
    open: Price | None = None
    high: Price | None = None
    low: Price | None = None
    volume: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class SignalsRequest(BaseModel):
    """Recent bars of the model's universe (at least ``min_bars`` per symbol, see /health)."""

    model_config = ConfigDict(extra="forbid")
    bars: list[Bar] = Field(min_length=1, max_length=MAX_BARS)

    def frame(self) -> pd.DataFrame:
        """The bars as a canonical long DataFrame (optional columns only when some bar has them)."""
        data: dict[str, object] = {
            "timestamp": pd.to_datetime([b.timestamp for b in self.bars], utc=True),
            "symbol": [b.symbol for b in self.bars],
            "close": [b.close for b in self.bars],
        }
        for col in OPTIONAL:
            values = [getattr(b, col) for b in self.bars]
            if any(v is not None for v in values):
                data[col] = pd.array(values, dtype="float64")
        return pd.DataFrame(data)


class ModelInfo(BaseModel):
    """The registered model version that answered."""

    name: str
    version: str
    alias: str | None
    run_id: str | None


class Weight(BaseModel):
    symbol: str
    weight: float


class SignalsResponse(BaseModel):
    """Target weights to hold after ``as_of`` (assets, then CASH) and the model that chose them."""

    model: ModelInfo
    as_of: datetime
    weights: list[Weight]


class ReloadResponse(BaseModel):
    outcome: str
    previous: ModelInfo | None
    current: ModelInfo
