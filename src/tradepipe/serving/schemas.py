"""Request and response bodies of the serving API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from tradepipe.core.schema import OPTIONAL
from tradepipe.trading.posted import PostedBars

# strict: JSON numbers only (ints allowed), never ``true`` or ``"123.5"``
Price = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
Volume = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
MAX_BARS = 100_000
MAX_SYMBOLS = 1_000
MAX_SYMBOL_LENGTH = 32
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def _sane(ts: datetime) -> datetime:
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    if not EARLIEST <= aware < LATEST:
        raise ValueError(f"timestamp must be in [{EARLIEST.year}, {LATEST.year})")
    return ts


class Bar(BaseModel):
    """One canonical bar; naive timestamps are read as UTC."""

    model_config = ConfigDict(extra="forbid")
    timestamp: Annotated[datetime, AfterValidator(_sane)]
    symbol: str = Field(min_length=1, max_length=MAX_SYMBOL_LENGTH)
    close: Price
    open: Price | None = None
    high: Price | None = None
    low: Price | None = None
    volume: Volume | None = None


class SignalsRequest(BaseModel):
    """Recent bars of the model's universe (at least ``min_bars`` per symbol, see /health); at most ``MAX_BARS``
    bars of at most ``MAX_SYMBOLS`` distinct symbols."""

    model_config = ConfigDict(extra="forbid")
    bars: list[Bar] = Field(min_length=1, max_length=MAX_BARS)

    @model_validator(mode="after")
    def _few_symbols(self) -> SignalsRequest:
        distinct = len({b.symbol for b in self.bars})
        if distinct > MAX_SYMBOLS:
            raise ValueError(f"at most {MAX_SYMBOLS} distinct symbols per request, got {distinct}")
        return self

    def posted(self) -> PostedBars:
        """The bars as columns (the account endpoint's hot path makes no frame of them)."""
        bars = self.bars
        return PostedBars.of([b.timestamp for b in bars], [b.symbol for b in bars], [b.close for b in bars],
                             {c: [getattr(b, c) for b in bars] for c in OPTIONAL})

    def frame(self) -> pd.DataFrame:
        """The bars as a canonical long DataFrame (optional columns only when some bar has them)."""
        return self.posted().frame()


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
