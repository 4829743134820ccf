"""Exchange rates and exact conversions (``/v1/rates``; public, no key needed server-side)."""
from __future__ import annotations

from typing import Any

from payloom.client import split_options
from payloom.objects import ListObject, PayloomObject, register
from payloom.resources._base import APIResource


@register
class Rate(APIResource):
    """``Rate.retrieve(base="ETH", quote="USD")``; ``Rate.convert(from_="ETH", to="USD",
    amount="1.5")`` (or ``amount_minor=``) answers a ``Conversion`` with exact decimal strings."""

    OBJECT_NAME = "rate"
    PATH = "/v1/rates"

    base: str
    quote: str
    rate: str
    as_of: int
    stale: bool

    @classmethod
    def retrieve(cls, base: str, quote: str, **params: Any) -> "Rate":
        params, options = split_options(params)
        return cls._call("GET", cls.PATH, {**params, "base": base, "quote": quote}, options)

    @classmethod
    def convert(cls, **params: Any) -> "Conversion":
        params, options = split_options(params)
        return cls._call("GET", f"{cls.PATH}/convert", params, options)

    @classmethod
    def list_pairs(cls, **params: Any) -> ListObject:
        params, options = split_options(params)
        return cls._list(f"{cls.PATH}/pairs", params, options)


@register
class Conversion(PayloomObject):
    OBJECT_NAME = "conversion"
    from_asset: str
    from_amount: int
    to_asset: str
    amount: int
    amount_decimal: str
    rate: str
