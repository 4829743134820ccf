"""Quotes and conversions for the rest of Payloom (and ``/v1/rates``).

``quote(deps, base, quote)`` -> ``Quote`` and ``convert(deps, amount, from_asset, to_asset)``
-> ``Conversion``. Both read the shared snapshot (``cache``): usually no I/O at all. They are
called OUTSIDE a unit of work (they may call the feed); a caller locking a rate on a payment
intent calls ``convert`` first and stores the returned ``Conversion`` in its unit.

Staleness (ADR 0034): a price older than ``rates_max_age_seconds`` by the provider's own
timestamp is never used: ``quote`` and ``convert`` raise 503 ``rates_unavailable`` instead.
``Quote.stale`` is only a warning flag: the snapshot is older than the refresh interval because
the feed could not be refreshed, but its prices are still within the limit.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from shared.ledger.assets import check_amount, get_asset
from shared.platform.deps import Deps
from shared.platform.errors import InvalidRequest, ServiceUnavailable
from shared.rates.cache import cache
from shared.rates.config import rates_settings
from shared.rates.pricing import (
    PriceMissing,
    Rounding,
    convert_at,
    pair_rate,
    priced_assets,
    supported_pairs,
)

IDENTITY_SOURCE = "identity"


@dataclasses.dataclass(frozen=True)
class Quote:
    base: str
    quote: str
    rate: str               # units of quote per 1 base, a plain decimal string (the rate of record)
    as_of: dt.datetime      # the provider's time of the pair's oldest price
    source: str
    stale: bool             # served past the refresh interval (feed failing), within the limit

    @property
    def decimal(self) -> Decimal:
        return Decimal(self.rate)


@dataclasses.dataclass(frozen=True)
class Conversion:
    amount: int             # minor units of to_asset
    to_asset: str
    from_amount: int        # minor units of from_asset
    from_asset: str
    rate: str               # to_asset per 1 from_asset (whole units), the rate of record
    rounding: Rounding      # "up": what a payer must send; "down": what someone is credited
    as_of: dt.datetime
    expires_at: dt.datetime  # until when this rate is offered (a lock's lifetime)
    source: str


def asset_code(value: object, *, param: str) -> str:
    """A ledger asset code from caller input, case-insensitive ("eth" -> "ETH"), that the feed
    prices; 400 ``asset_unknown`` or ``rate_pair_unsupported`` otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("An asset code is required.", code="asset_unknown", param=param)
    code = value.strip().upper()
    if len(code) > 16:
        raise InvalidRequest("Unknown asset.", code="asset_unknown", param=param)
    return get_asset(code, param=param).code


def pairs(deps: Deps) -> list[tuple[str, str]]:
    return supported_pairs(rates_settings(deps).rates_coin_ids)


def quote(deps: Deps, base: str, quote: str) -> Quote:
    """The current rate of ``base`` in ``quote``; 503 ``rates_unavailable`` rather than stale."""
    s = rates_settings(deps)
    base, quote_ = asset_code(base, param="base"), asset_code(quote, param="quote")
    priced = priced_assets(s.rates_coin_ids)
    for code, param in ((base, "base"), (quote_, "quote")):
        if code not in priced:
            raise InvalidRequest(f"No price feed covers {code}.", code="rate_pair_unsupported",
                                 param=param)
    now = deps.clock.now()
    if base == quote_:
        return Quote(base, quote_, "1", now, IDENTITY_SOURCE, False)
    snap = cache(deps).current(deps)
    if snap is None:
        raise _unavailable(f"No {base}/{quote_} rate is available yet; retry shortly.")
    try:
        pr = pair_rate(snap, base, quote_, s.rates_coin_ids, s.rates_fx_reference)
    except PriceMissing as exc:
        raise _unavailable(f"The price feed has no price for {exc.asset}.") from None
    as_of = pr.as_of or snap.fetched_at
    if now - as_of > dt.timedelta(seconds=s.rates_max_age_seconds):
        raise _unavailable(f"The latest {base}/{quote_} price is from {as_of.isoformat()}, older "
                           f"than the {s.rates_max_age_seconds}s limit; no stale rate is used.")
    stale = now - snap.fetched_at >= dt.timedelta(seconds=s.rates_refresh_seconds)
    return Quote(base, quote_, pr.text, as_of, snap.source, stale)


def convert(deps: Deps, amount_minor: int, from_asset: str, to_asset: str, *,
            rounding: Rounding = "up", lock_seconds: int | None = None) -> Conversion:
    """``amount_minor`` of ``from_asset`` in minor units of ``to_asset`` at the current rate,
    exact against the returned rate string, rounded once: UP by default (the amount a payer
    must send never falls short). ``expires_at`` = now + ``lock_seconds`` (default
    ``rates_lock_seconds``): how long a caller may hold the customer to this rate."""
    if rounding not in ("up", "down"):
        raise ValueError("rounding is 'up' or 'down'")
    source, target = get_asset(asset_code(from_asset, param="from"), param="from"), \
        get_asset(asset_code(to_asset, param="to"), param="to")
    check_amount(amount_minor, source)
    q = quote(deps, source.code, target.code)
    amount = convert_at(amount_minor, source, target, q.decimal, rounding)
    lock = rates_settings(deps).rates_lock_seconds if lock_seconds is None else lock_seconds
    if isinstance(lock, bool) or not isinstance(lock, int) or lock <= 0:
        raise ValueError("lock_seconds is a positive int")
    now = deps.clock.now()
    return Conversion(amount, target.code, amount_minor, source.code, q.rate, rounding, q.as_of,
                      now + dt.timedelta(seconds=lock), q.source)


def _unavailable(message: str) -> ServiceUnavailable:
    return ServiceUnavailable(message, code="rates_unavailable", headers={"Retry-After": "5"})
