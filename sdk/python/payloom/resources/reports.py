"""Merchant reports (``/v1/reports``): the day's settlement (the merchant's ledger entries and
balances) and payment analytics."""
from __future__ import annotations

from typing import Any

from payloom.client import split_options
from payloom.objects import PayloomObject, register
from payloom.resources._base import APIResource


class Report(APIResource):
    PATH = "/v1/reports"

    @classmethod
    def settlements(cls, date: str, **params: Any) -> "SettlementReport":
        """The day's report (``date="YYYY-MM-DD"``, UTC)."""
        params, options = split_options(params)
        return cls._call("GET", f"{cls.PATH}/settlements", {**params, "date": date}, options)

    @classmethod
    def settlements_csv(cls, date: str, **params: Any) -> bytes:
        """The same report as RFC 4180 CSV bytes."""
        params, options = split_options(params)
        return cls._call("GET", f"{cls.PATH}/settlements.csv", {**params, "date": date}, options)

    @classmethod
    def analytics(cls, **params: Any) -> "PaymentAnalytics":
        """Per UTC day, asset and method (``from_="YYYY-MM-DD"``, ``to=``)."""
        params, options = split_options(params)
        return cls._call("GET", f"{cls.PATH}/analytics", params, options)


@register
class SettlementReport(PayloomObject):
    OBJECT_NAME = "settlement_report"


@register
class PaymentAnalytics(PayloomObject):
    OBJECT_NAME = "payment_analytics"
