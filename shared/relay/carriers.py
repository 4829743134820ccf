"""The carrier a relay SIM or recipient belongs to, as matching keys it.

Identity's numbering plan (``shared/identity/factors/data/kh_carriers.json``) knows every
Cambodian operator. Matching keys the three networks that carry almost all traffic (Smart,
Metfone, Cellcard) by their own key and pools every other operator, and foreign numbers, as
``other``: a Seatel SIM sends to a Seatel recipient through the same pool, and the pool keeps
the per-carrier index small and dense. R2 calls ``relay_carrier`` on the recipient so both
sides key the same way.
"""
from __future__ import annotations

from shared.identity.factors.phone import PhoneNumber, parse_phone

MAJOR = ("smart", "metfone", "cellcard")
OTHER = "other"
CARRIERS = (*MAJOR, OTHER)
NAMES = {"smart": "Smart", "metfone": "Metfone", "cellcard": "Cellcard", OTHER: "Other"}


def relay_carrier(number: PhoneNumber | str) -> str:
    """``smart`` | ``metfone`` | ``cellcard`` | ``other`` for a parsed number or an E.164 string
    (a string that does not parse is a 400 from ``parse_phone``)."""
    if isinstance(number, str):
        number = parse_phone(number)
    key = number.carrier.key if number.carrier else None
    return key if key in MAJOR else OTHER


def normalize(carrier: str | None) -> str | None:
    """A carrier argument as the index keys it (``None`` stays None: any carrier)."""
    if carrier is None:
        return None
    key = carrier.strip().lower()
    return key if key in MAJOR else OTHER
