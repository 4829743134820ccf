"""/v1/rates: current rates, the supported pairs and conversions.

Public on purpose: prices are public facts and the hosted payment page shows them to payers
who have no account. Every answer comes from the shared snapshot (no feed call per request),
and a per-IP limit bounds what one caller can make us do.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shared.ledger.assets import INT64_MAX, format_decimal, get_asset, parse_decimal
from shared.platform.clock import unix
from shared.platform.models import RequestModel
from shared.platform.pagination import ListResponse
from shared.platform.ratelimit import Limit
from shared.platform.router import PUBLIC, Context, Router
from shared.rates import service
from shared.rates.models import Conversion, Rate, RatePair

api = Router("rates", public_prefix="rates", rate_limits=[(Limit("rates.ip", 600, 60), "ip")])


class RateQuery(RequestModel):
    base: str = Field(..., min_length=1, max_length=16, description="Asset code, e.g. ETH.")
    quote: str = Field(..., min_length=1, max_length=16, description="Asset code, e.g. USD.")


class ConvertQuery(RequestModel):
    from_: str = Field(..., alias="from", min_length=1, max_length=16)
    to: str = Field(..., min_length=1, max_length=16)
    amount: str | None = Field(None, max_length=40, description="Decimal amount of `from` "
                               "(\"12.34\"); at most the asset's ledger scale of decimals.")
    amount_minor: int | None = Field(None, ge=1, le=INT64_MAX,
                                     description="Or the amount in minor units of `from`.")
    rounding: Literal["up", "down"] = Field("up", description="`up` (default): the amount a "
                                            "payer must send; `down`: a value credited.")

    @model_validator(mode="after")
    def _one_amount(self):
        if (self.amount is None) == (self.amount_minor is None):
            raise ValueError("give exactly one of amount and amount_minor")
        return self


@api.get("/", query=RateQuery, response=Rate, auth=PUBLIC, atomic=False)
def get_rate(ctx: Context):
    """The current rate of one pair."""
    q = service.quote(ctx.deps, ctx.query.base, ctx.query.quote)
    return Rate(base=q.base, quote=q.quote, rate=q.rate, as_of=unix(q.as_of), source=q.source,
                stale=q.stale)


@api.get("/pairs", response=ListResponse[RatePair], auth=PUBLIC, atomic=False)
def list_pairs(ctx: Context):
    """The pairs the price feed covers (every ordered pair of priced assets)."""
    data = [RatePair(base=b, quote=q) for b, q in service.pairs(ctx.deps)]
    return ListResponse[RatePair](data=data, has_more=False, url="/v1/rates/pairs")


@api.get("/convert", query=ConvertQuery, response=Conversion, auth=PUBLIC, atomic=False)
def convert(ctx: Context):
    """An amount of one asset in another at the current rate, exact, rounded once."""
    q = ctx.query
    source = get_asset(service.asset_code(q.from_, param="from"), param="from")
    if q.amount is not None:
        units = parse_decimal(q.amount, source, param="amount")
    else:
        units = q.amount_minor
    c = service.convert(ctx.deps, units, source.code, q.to, rounding=q.rounding)
    return Conversion(from_asset=c.from_asset, from_amount=c.from_amount,
                      from_amount_decimal=format_decimal(c.from_amount, c.from_asset),
                      to_asset=c.to_asset, amount=c.amount,
                      amount_decimal=format_decimal(c.amount, c.to_asset), rate=c.rate,
                      rounding=c.rounding, as_of=unix(c.as_of), expires_at=unix(c.expires_at),
                      source=c.source)

