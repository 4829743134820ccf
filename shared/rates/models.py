"""Public resources of /v1/rates. Times are unix seconds, as on payment intents."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.platform.models import ResourceModel


class Rate(ResourceModel):
    object: Literal["rate"] = "rate"
    base: str = Field(..., description="The asset priced.")
    quote: str = Field(..., description="The asset the price is expressed in.")
    rate: str = Field(..., description="Units of `quote` per 1 `base` (whole units), a plain "
                      "decimal string: the rate of record conversions are computed from.")
    as_of: int = Field(..., description="Provider time (unix) of the pair's oldest price.")
    source: str
    stale: bool = Field(..., description="True when the feed could not be refreshed on "
                        "schedule; the price is still within the staleness limit.")


class RatePair(BaseModel):
    base: str
    quote: str


class Conversion(ResourceModel):
    object: Literal["conversion"] = "conversion"
    from_asset: str
    from_amount: int = Field(..., description="Minor units of `from_asset`.")
    from_amount_decimal: str
    to_asset: str
    amount: int = Field(..., description="Minor units of `to_asset`, rounded once (`rounding`).")
    amount_decimal: str
    rate: str = Field(..., description="`to_asset` per 1 `from_asset`; `amount` is exact "
                      "against it before rounding.")
    rounding: Literal["up", "down"]
    as_of: int
    expires_at: int = Field(..., description="Until when this rate is offered (unix).")
    source: str
