"""Pure rate arithmetic: a feed snapshot -> the rate of a pair -> an exact conversion.

No I/O here; ``service`` feeds it a snapshot from the cache.

* Every asset is priced in USD: USD itself is 1, a coin is the feed's USD price, KHR is
  ``1 / (KHR per USD)`` where KHR per USD is the feed's own forex rate, read as the ratio of
  the reference coin's KHR and USD prices (CoinGecko derives fiat prices that way).
* A pair's rate is units of ``quote`` per 1 ``base``. A coin against KHR uses the feed's KHR
  price directly; other pairs cross through USD. A rate is a ``Decimal`` rounded half-even to
  ``RATE_DIGITS`` significant digits, and THAT number is the rate of record: conversions are
  exact against it, so anyone holding the shown rate string recomputes the same amount.
* ``convert_at`` multiplies with ``fractions.Fraction`` (no precision limit) and rounds once,
  to a whole minor unit of the target asset: UP for the amount a payer must send (the payer
  never sends less than the price), DOWN for a value someone is credited with.
* A pair's ``as_of`` is the provider's time of its OLDEST leg, never later than the fetch.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from typing import Literal

from shared.ledger.assets import ASSETS, INT64_MAX, Asset
from shared.platform.errors import InvalidRequest

UTC = dt.UTC
RATE_DIGITS = 20
_CTX = Context(prec=RATE_DIGITS, rounding=ROUND_HALF_EVEN)
FIAT_VS = {"USD": "usd", "KHR": "khr"}   # fiat assets are the feed's vs currencies
VS_CURRENCIES = tuple(FIAT_VS.values())
Rounding = Literal["up", "down"]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The feed's prices as fetched at ``fetched_at``: ``prices[coin][vs]``, ``updated_at[coin]``
    (the provider's unix time of each coin's price)."""
    source: str
    fetched_at: dt.datetime
    prices: Mapping[str, Mapping[str, Decimal]]
    updated_at: Mapping[str, int]

    def to_doc(self) -> dict:
        """Firestore form: decimals as strings (a double would not keep them exact)."""
        return {"source": self.source, "fetched_at": self.fetched_at,
                "prices": {c: {v: str(p) for v, p in vs.items()} for c, vs in self.prices.items()},
                "updated_at": dict(self.updated_at)}

    @classmethod
    def from_doc(cls, doc: Mapping) -> Snapshot | None:
        if not doc.get("fetched_at") or not isinstance(doc.get("prices"), Mapping):
            return None
        return cls(doc.get("source", ""), doc["fetched_at"],
                   {c: {v: Decimal(p) for v, p in vs.items()} for c, vs in doc["prices"].items()},
                   {c: int(t) for c, t in (doc.get("updated_at") or {}).items()})

    def merged_over(self, older: Snapshot | None) -> Snapshot:
        """This snapshot, keeping the older one's price (and its old time) for any coin this
        fetch did not price: its age still counts, so it expires by the staleness limit."""
        if older is None:
            return self
        prices = {**older.prices, **self.prices}
        updated = {**older.updated_at, **self.updated_at}
        return dataclasses.replace(self, prices=prices, updated_at=updated)


@dataclasses.dataclass(frozen=True)
class PairRate:
    base: str
    quote: str
    rate: Decimal
    as_of: dt.datetime | None   # None: definitional (an asset against itself)

    @property
    def text(self) -> str:
        return rate_text(self.rate)


class PriceMissing(Exception):
    """The snapshot has no price for an asset the pair needs."""

    def __init__(self, asset: str):
        super().__init__(f"no price for {asset}")
        self.asset = asset


def rate_text(rate: Decimal) -> str:
    """A plain decimal string without exponent or trailing zeros ("3000", "0.00033333")."""
    return format(rate.normalize(), "f")


def priced_assets(coin_ids: Mapping[str, str]) -> list[str]:
    """The ledger assets the feed can price: the fiat vs currencies and every mapped coin."""
    return [code for code in ASSETS if code in FIAT_VS or code in coin_ids]


def supported_pairs(coin_ids: Mapping[str, str]) -> list[tuple[str, str]]:
    codes = priced_assets(coin_ids)
    return [(b, q) for b in codes for q in codes if b != q]


def _when(unix: int, snap: Snapshot) -> dt.datetime:
    return min(dt.datetime.fromtimestamp(unix, UTC), snap.fetched_at)


def _coin_price(snap: Snapshot, coin: str | None, vs: str, asset: str) -> tuple[Decimal, dt.datetime]:
    price = (snap.prices.get(coin) or {}).get(vs) if coin else None
    stamp = snap.updated_at.get(coin) if coin else None
    if price is None or stamp is None or price <= 0:
        raise PriceMissing(asset)
    return price, _when(stamp, snap)


def khr_per_usd(snap: Snapshot, coin_ids: Mapping[str, str], fx_reference: str) -> tuple[Decimal, dt.datetime]:
    coin = coin_ids.get(fx_reference)
    khr, at = _coin_price(snap, coin, "khr", "KHR")
    usd, _ = _coin_price(snap, coin, "usd", "KHR")
    return _CTX.divide(khr, usd), at


def usd_price(snap: Snapshot, asset: str, coin_ids: Mapping[str, str],
              fx_reference: str) -> tuple[Decimal, dt.datetime | None]:
    """USD per 1 ``asset`` and the provider time it dates from (None for USD itself)."""
    if asset == "USD":
        return Decimal(1), None
    if asset == "KHR":
        per_usd, at = khr_per_usd(snap, coin_ids, fx_reference)
        return _CTX.divide(1, per_usd), at
    return _coin_price(snap, coin_ids.get(asset), "usd", asset)


def _older(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return b if a is None else a if b is None else min(a, b)


def pair_rate(snap: Snapshot, base: str, quote: str, coin_ids: Mapping[str, str],
              fx_reference: str) -> PairRate:
    """Units of ``quote`` per 1 ``base`` from one snapshot (both legs from the same fetch)."""
    if base == quote:
        return PairRate(base, quote, Decimal(1), None)
    if quote == "KHR" and base in coin_ids and "khr" in (snap.prices.get(coin_ids[base]) or {}):
        price, at = _coin_price(snap, coin_ids[base], "khr", base)
        return PairRate(base, quote, _CTX.plus(price), at)
    if base == "KHR" and quote in coin_ids and "khr" in (snap.prices.get(coin_ids[quote]) or {}):
        price, at = _coin_price(snap, coin_ids[quote], "khr", quote)
        return PairRate(base, quote, _CTX.divide(1, price), at)
    if base == "USD" and quote == "KHR":
        per_usd, at = khr_per_usd(snap, coin_ids, fx_reference)
        return PairRate(base, quote, per_usd, at)
    b, b_at = usd_price(snap, base, coin_ids, fx_reference)
    q, q_at = usd_price(snap, quote, coin_ids, fx_reference)
    return PairRate(base, quote, _CTX.divide(b, q), _older(b_at, q_at))


def convert_at(amount: int, source: Asset, target: Asset, rate: Decimal,
               rounding: Rounding = "up", *, param: str = "amount") -> int:
    """``amount`` minor units of ``source`` in minor units of ``target`` at ``rate`` (target per
    source, whole units), exact, rounded once to a whole target minor unit."""
    if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
        raise ValueError("a rate is a finite positive Decimal")
    exact = Fraction(amount) * Fraction(rate) * Fraction(10) ** (target.scale - source.scale)
    units = math.ceil(exact) if rounding == "up" else math.floor(exact)
    if units > INT64_MAX:
        raise InvalidRequest(f"The converted amount exceeds the largest {target.code} amount the "
                             "ledger holds.", code="amount_too_large", param=param)
    return units
