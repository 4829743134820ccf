"""Amounts as a payer reads them, in the page's language (Babel), from exact integers.

Ledger amounts are integers at the asset's scale and on-chain amounts integers of base units
(``shared.ledger.assets``); they become ``Decimal`` only here, for display. Fiat keeps its
scale's places ("12.50 USD", "40,000 KHR"); crypto drops trailing zeros ("1.5 ETH"). The plain
form (no grouping, "." decimal point) is what copy buttons and wallets get.
"""
from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_decimal

from shared.ledger import assets


def _number(value: Decimal, places: int | None, lang: str) -> str:
    if places is None:
        return format_decimal(value, locale=lang, decimal_quantization=False)
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return format_decimal(value, format=pattern, locale=lang)


def ledger(units: int | None, code: str, lang: str) -> str:
    """Ledger units of ``code`` ("12.50 USD"); "" for None."""
    if units is None:
        return ""
    a = assets.get_asset(code)
    value = Decimal(int(units)).scaleb(-a.scale)
    places = a.scale if a.kind == "fiat" else None
    return f"{_number(value.normalize() if places is None else value, places, lang)} {a.code}"


def plain_base(base_units: int | str | None, code: str) -> str:
    """On-chain base units as a plain decimal ("1.5") for wallets and copy buttons."""
    if base_units is None:
        return ""
    a = assets.get_asset(code)
    value = Decimal(int(base_units)).scaleb(-(a.onchain_decimals or 0))
    text = format(value.normalize(), "f")
    return text


def onchain(base_units: int | str | None, code: str, lang: str) -> str:
    """On-chain base units of ``code`` for reading ("1.5 ETH")."""
    if base_units is None:
        return ""
    return f"{_number(Decimal(plain_base(base_units, code)), None, lang)} {code}"
