"""The one registry of assets the ledger holds, each with a fixed ledger scale.

Amounts are Python ``int`` in ledger units (minor units at the asset's ``scale``) everywhere;
Firestore stores them as 64-bit integers, so every amount and every balance must fit int64.
Conversions are exact or rejected, never rounded:

- ``parse_decimal("12.34", "USD") -> 1234``; ``"1.001"`` USD is rejected (more decimals than
  the scale), as are signs, exponents and anything that is not a plain decimal string.
- ``from_onchain("1000000000000", "ETH") -> 1000`` (gwei); a raw amount whose remainder below
  the ledger scale is non-zero ("dust") is rejected, because the ledger could not give it back.
- ``to_onchain(units, asset)`` is the exact inverse (a decimal string of base units).

Scales (see docs/decisions/0020-ledger.md for the reasoning):

========  ======  =========  ==================================================================
asset     scale   on-chain   why
========  ======  =========  ==================================================================
USD       2       —          cents, as card networks and Stripe
KHR       0       —          riel has no minor unit in circulation (ISO 4217 says 2; unused)
USDC      6       6          ledger = chain, conversion is the identity
MUSD      6       18         Mezo dollar: 18 decimals overflow int64 at 9.2 MUSD; 6 matches USDC
ETH       9       18         gwei: int64 holds 9.2e9 ETH; sub-gwei amounts are dust
PPT       6       18         PeerPower token: 18 decimals would cap balances at 9.2 tokens
========  ======  =========  ==================================================================
"""
from __future__ import annotations

import dataclasses
import re

from shared.platform.errors import InvalidRequest

INT64_MAX = 2**63 - 1


@dataclasses.dataclass(frozen=True)
class Asset:
    code: str
    scale: int                      # ledger minor-unit exponent
    onchain_decimals: int | None    # None for fiat
    name: str
    kind: str                       # "fiat" | "stablecoin" | "crypto" | "token"

    @property
    def dust_factor(self) -> int:
        """Base units per ledger unit (1 for fiat / identical scale)."""
        if self.onchain_decimals is None:
            return 1
        return 10 ** (self.onchain_decimals - self.scale)

    @property
    def max_units(self) -> int:
        return INT64_MAX


ASSETS: dict[str, Asset] = {a.code: a for a in (
    Asset("USD", 2, None, "US dollar", "fiat"),
    Asset("KHR", 0, None, "Cambodian riel", "fiat"),
    Asset("USDC", 6, 6, "USD Coin", "stablecoin"),
    Asset("MUSD", 6, 18, "Mezo USD", "stablecoin"),
    Asset("ETH", 9, 18, "Ether (held in gwei)", "crypto"),
    Asset("PPT", 6, 18, "PeerPower token", "token"),
)}

for _a in ASSETS.values():  # the registry itself must be coherent
    assert _a.onchain_decimals is None or _a.onchain_decimals >= _a.scale, _a

_DECIMAL_RE = re.compile(r"^(0|[1-9][0-9]*)(?:\.([0-9]+))?$")
_RAW_RE = re.compile(r"^(0|[1-9][0-9]*)$")


def get_asset(code: str, *, param: str = "asset") -> Asset:
    asset = ASSETS.get(code) if isinstance(code, str) else None
    if asset is None:
        raise InvalidRequest(f"Unknown asset {code!r}; supported: {', '.join(ASSETS)}.",
                             code="asset_unknown", param=param)
    return asset


def check_amount(units: int, asset: str | Asset, *, param: str = "amount",
                 allow_zero: bool = False) -> int:
    """An amount in ledger units: a real int (not bool, not float), positive, within int64."""
    a = asset if isinstance(asset, Asset) else get_asset(asset)
    if isinstance(units, bool) or not isinstance(units, int):
        raise InvalidRequest("Amounts are integers in the asset's minor units.",
                             code="amount_invalid", param=param)
    if units < 0 or (units == 0 and not allow_zero):
        raise InvalidRequest("The amount must be greater than zero.",
                             code="amount_not_positive", param=param)
    if units > a.max_units:
        raise InvalidRequest(f"The amount exceeds the largest {a.code} amount the ledger holds.",
                             code="amount_too_large", param=param)
    return units


def parse_decimal(value: str, asset: str | Asset, *, param: str = "amount") -> int:
    """A human decimal string ("12.34") to ledger units; more decimals than the scale → 400."""
    a = asset if isinstance(asset, Asset) else get_asset(asset)
    if not isinstance(value, str):
        raise InvalidRequest("Decimal amounts are strings such as \"12.34\".",
                             code="amount_invalid", param=param)
    m = _DECIMAL_RE.match(value.strip())
    if not m:
        raise InvalidRequest(f"{value!r} is not a plain non-negative decimal amount.",
                             code="amount_invalid", param=param)
    whole, frac = m.group(1), (m.group(2) or "")
    stripped = frac.rstrip("0")
    if len(stripped) > a.scale:
        raise InvalidRequest(f"{a.code} amounts have at most {a.scale} decimal places.",
                             code="amount_too_precise", param=param)
    units = int(whole) * 10 ** a.scale + (int(stripped.ljust(a.scale, "0")) if a.scale else 0)
    return check_amount(units, a, param=param)


def format_decimal(units: int, asset: str | Asset) -> str:
    """Ledger units to a decimal string with exactly ``scale`` places ("-12.30")."""
    a = asset if isinstance(asset, Asset) else get_asset(asset)
    sign = "-" if units < 0 else ""
    q, r = divmod(abs(int(units)), 10 ** a.scale)
    return f"{sign}{q}.{str(r).rjust(a.scale, '0')}" if a.scale else f"{sign}{q}"


def from_onchain(raw: str, asset: str | Asset, *, param: str = "raw_amount") -> int:
    """A raw on-chain amount (decimal string of base units) to ledger units; dust → 400."""
    a = asset if isinstance(asset, Asset) else get_asset(asset)
    if a.onchain_decimals is None:
        raise InvalidRequest(f"{a.code} is not an on-chain asset.", code="asset_not_onchain",
                             param=param)
    if not isinstance(raw, str) or not _RAW_RE.match(raw.strip()):
        raise InvalidRequest("Raw on-chain amounts are decimal strings of base units.",
                             code="amount_invalid", param=param)
    units, dust = divmod(int(raw.strip()), a.dust_factor)
    if dust:
        raise InvalidRequest(
            f"{raw} base units of {a.code} is not a whole number of ledger units "
            f"(10^{a.onchain_decimals - a.scale} base units each); dust is not accepted.",
            code="amount_dust", param=param)
    return check_amount(units, a, param=param)


def to_onchain(units: int, asset: str | Asset) -> str:
    a = asset if isinstance(asset, Asset) else get_asset(asset)
    if a.onchain_decimals is None:
        raise ValueError(f"{a.code} is not an on-chain asset")
    return str(int(units) * a.dust_factor)
