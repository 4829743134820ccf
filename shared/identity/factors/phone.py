"""Phone numbers: E.164 normalisation, Cambodian validation and carrier detection.

Every number we store or text is E.164 (``+85512345678``). Parsing uses libphonenumber
(``phonenumbers``); a number without ``+`` is read as Cambodian (national format, ``012 345 678``).

Cambodian (+855) numbers must be valid mobile numbers *and* fall in a range of the operator table
``data/kh_carriers.json`` (the single, editable copy of the numbering plan; its sources are in the
file). The carrier is the operator of the longest matching prefix. Any other country's number is
accepted when libphonenumber says it is valid; its carrier is ``None``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import pathlib

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from shared.platform.errors import InvalidRequest

DATA_FILE = pathlib.Path(__file__).resolve().parent / "data" / "kh_carriers.json"
DEFAULT_REGION = "KH"
MAX_INPUT_LENGTH = 32
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


@dataclasses.dataclass(frozen=True)
class Carrier:
    key: str
    name: str
    prefix: str  # national significant number prefix, e.g. "12" for 012

    @property
    def national_prefix(self) -> str:
        return "0" + self.prefix


@dataclasses.dataclass(frozen=True)
class PhoneNumber:
    e164: str
    country_code: int
    region: str | None
    national_number: str
    carrier: Carrier | None

    def to_public(self) -> dict:
        return {"e164": self.e164, "country_code": self.country_code, "region": self.region,
                "carrier": self.carrier.name if self.carrier else None,
                "carrier_key": self.carrier.key if self.carrier else None}


@dataclasses.dataclass(frozen=True)
class CarrierTable:
    country_code: str
    carriers: dict[str, str]          # key -> display name
    prefixes: dict[str, str]          # national prefix -> carrier key
    sources: tuple[str, ...]

    def lookup(self, national_number: str) -> Carrier | None:
        for length in range(min(len(national_number), max(map(len, self.prefixes))), 0, -1):
            key = self.prefixes.get(national_number[:length])
            if key is not None:
                return Carrier(key, self.carriers[key], national_number[:length])
        return None


@functools.lru_cache(maxsize=1)
def carrier_table() -> CarrierTable:
    raw = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    carriers = {k: v["name"] for k, v in raw["carriers"].items()}
    prefixes = dict(raw["prefixes"])
    unknown = sorted({v for v in prefixes.values()} - set(carriers))
    if unknown:
        raise ValueError(f"{DATA_FILE.name}: prefixes name unknown carriers {unknown}")
    bad = [p for p in prefixes if not p.isdigit()]
    if bad:
        raise ValueError(f"{DATA_FILE.name}: prefixes must be digits, got {bad}")
    return CarrierTable(raw["country_code"], carriers, prefixes, tuple(raw.get("sources", ())))


def _invalid(message: str, code: str = "phone_invalid", param: str = "phone") -> InvalidRequest:
    return InvalidRequest(message, code=code, param=param)


def parse_phone(raw: str, *, default_region: str = DEFAULT_REGION, param: str = "phone") -> PhoneNumber:
    """Normalise ``raw`` to E.164 and detect the carrier; ``InvalidRequest`` (400) if unusable."""
    if not isinstance(raw, str) or not raw.strip():
        raise _invalid("A phone number is required.", "parameter_missing", param)
    text = raw.strip()
    if len(text) > MAX_INPUT_LENGTH or any(c.isalpha() for c in text):
        raise _invalid("This is not a phone number.", param=param)
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        raise _invalid("This is not a phone number; use E.164, e.g. +85512345678.", param=param) from None
    if number.extension or not phonenumbers.is_valid_number(number):
        raise _invalid("This phone number is not valid.", param=param)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number)
    national = str(number.national_number)
    carrier = None
    if str(number.country_code) == carrier_table().country_code:
        if phonenumbers.number_type(number) not in _MOBILE_TYPES:
            raise _invalid("Cambodian numbers must be mobile numbers that can receive SMS.",
                           "phone_not_mobile", param)
        carrier = carrier_table().lookup(national)
        if carrier is None:
            raise _invalid("This Cambodian number is not in a range allocated to a mobile operator.",
                           "phone_unknown_carrier", param)
    return PhoneNumber(e164=e164, country_code=number.country_code, region=region,
                       national_number=national, carrier=carrier)


def normalize_e164(raw: str) -> str:
    return parse_phone(raw).e164


def mask(e164: str) -> str:
    """For logs and messages: keep the country code and the last 3 digits."""
    if len(e164) <= 6:
        return "***"
    return e164[:4] + "*" * (len(e164) - 7) + e164[-3:]
