"""Pure rate arithmetic: exact conversions, one rounding in the right direction, cross rates."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ledger.assets import ASSETS, INT64_MAX
from shared.platform.errors import InvalidRequest
from shared.rates.config import DEFAULT_COIN_IDS
from shared.rates.pricing import (
    RATE_DIGITS,
    PriceMissing,
    Snapshot,
    convert_at,
    pair_rate,
    rate_text,
    supported_pairs,
)

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IDS = DEFAULT_COIN_IDS


def snap(**over) -> Snapshot:
    prices = {"ethereum": {"usd": Decimal(3000), "khr": Decimal(12300000)},
              "usd-coin": {"usd": Decimal("0.9998"), "khr": Decimal("4099.18")},
              "mezo-usd": {"usd": Decimal("1.0003"), "khr": Decimal("4101.23")},
              "peerpower": {"usd": Decimal("0.05"), "khr": Decimal(205)}}
    updated = {c: int(T0.timestamp()) - 30 for c in prices}
    updated.update(over.pop("updated", {}))
    prices.update(over.pop("prices", {}))
    return Snapshot("coingecko", T0, prices, updated)


rates = st.decimals(min_value=Decimal("1e-12"), max_value=Decimal("1e12"), allow_nan=False,
                    allow_infinity=False, places=None).filter(lambda d: d > 0).map(
    lambda d: +Decimal(d).normalize())
assets = st.sampled_from(sorted(ASSETS))


@settings(max_examples=400, deadline=None)
@given(amount=st.integers(1, 10**15), rate=rates, a=assets, b=assets)
def test_conversion_is_exact_and_rounds_once(amount, rate, a, b):
    src, dst = ASSETS[a], ASSETS[b]
    exact = Fraction(amount) * Fraction(rate) * Fraction(10) ** (dst.scale - src.scale)
    if exact > INT64_MAX:
        with pytest.raises(InvalidRequest):
            convert_at(amount, src, dst, rate, "up")
        return
    up, down = convert_at(amount, src, dst, rate, "up"), convert_at(amount, src, dst, rate, "down")
    assert up - 1 < exact <= up            # a payer never sends less than the price
    assert down <= exact < down + 1        # nobody is credited more than the value
    assert up - down == (0 if exact.denominator == 1 else 1)
    assert up >= 1


@settings(max_examples=200, deadline=None)
@given(x=st.integers(1, 10**6), y=st.integers(1, 10**6), rate=rates.filter(lambda r: r < 10**5))
def test_conversion_is_monotonic(x, y, rate):
    usd, eth = ASSETS["USD"], ASSETS["ETH"]
    lo, hi = sorted((x, y))
    assert convert_at(lo, usd, eth, rate) <= convert_at(hi, usd, eth, rate)


def test_worked_examples():
    usd, eth, khr, usdc = ASSETS["USD"], ASSETS["ETH"], ASSETS["KHR"], ASSETS["USDC"]
    third = pair_rate(snap(), "USD", "ETH", IDS, "ETH").rate    # 1/3000 to 20 digits
    assert rate_text(third) == "0.00033333333333333333333"[:len(rate_text(third))]
    assert len(third.as_tuple().digits) == RATE_DIGITS
    # $10.00 -> 10/3000 ETH = 3,333,333.33.. gwei (x 1e-20 rounding): the payer sends 3,333,334.
    assert convert_at(1000, usd, eth, third, "up") == 3_333_334
    assert convert_at(1000, usd, eth, third, "down") == 3_333_333
    assert convert_at(3_333_334, eth, usd, Decimal(3000), "up") == 1001   # 10.000002 -> 10.01
    assert convert_at(1, usd, khr, Decimal(4100), "up") == 41           # 1 cent = 41 riel
    per_riel = pair_rate(snap(), "KHR", "USD", IDS, "ETH").rate   # 1/4100, 20 digits, half-even
    assert convert_at(41, khr, usd, per_riel, "up") == 1
    # The rate of record decides: 1/4100 rounded UP at the 28th digit makes 41 riel 1.00..01 cent.
    assert convert_at(41, khr, usd, Decimal(1) / Decimal(4100), "up") == 2
    assert convert_at(123, usdc, usdc, Decimal(1)) == 123


def test_overflow_is_a_400():
    with pytest.raises(InvalidRequest) as exc:
        convert_at(INT64_MAX, ASSETS["USD"], ASSETS["KHR"], Decimal(4100))
    assert exc.value.code == "amount_too_large"


@pytest.mark.parametrize("bad", [Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity"), 1.5])
def test_bad_rates_are_programming_errors(bad):
    with pytest.raises(ValueError):
        convert_at(1, ASSETS["USD"], ASSETS["ETH"], bad)


def test_pair_rates_from_one_snapshot():
    s = snap()
    assert pair_rate(s, "ETH", "USD", IDS, "ETH").rate == Decimal(3000)
    assert pair_rate(s, "ETH", "KHR", IDS, "ETH").rate == Decimal(12300000)       # direct
    assert pair_rate(s, "USD", "KHR", IDS, "ETH").rate == Decimal(4100)           # feed forex
    assert abs(pair_rate(s, "KHR", "USD", IDS, "ETH").rate * 4100 - 1) < Decimal("1e-19")
    eth_usdc = pair_rate(s, "ETH", "USDC", IDS, "ETH").rate                        # cross
    assert abs(eth_usdc - Decimal(3000) / Decimal("0.9998")) < Decimal("1e-15")
    assert pair_rate(s, "PPT", "PPT", IDS, "ETH").rate == 1
    assert pair_rate(s, "PPT", "PPT", IDS, "ETH").as_of is None


def test_as_of_is_the_oldest_leg_and_never_after_the_fetch():
    old = int(T0.timestamp()) - 200
    s = snap(updated={"usd-coin": old, "ethereum": int(T0.timestamp()) + 3600})
    assert pair_rate(s, "ETH", "USDC", IDS, "ETH").as_of == dt.datetime.fromtimestamp(old, UTC)
    assert pair_rate(s, "ETH", "USD", IDS, "ETH").as_of == T0   # a future stamp is clamped


def test_missing_prices_are_named():
    s = snap()
    del s.prices["peerpower"]
    with pytest.raises(PriceMissing) as exc:
        pair_rate(s, "PPT", "USD", IDS, "ETH")
    assert exc.value.asset == "PPT"
    del s.prices["ethereum"]
    with pytest.raises(PriceMissing):
        pair_rate(s, "USD", "KHR", IDS, "ETH")   # the forex reference is gone


def test_supported_pairs_follow_the_coin_mapping():
    all_pairs = supported_pairs(IDS)
    assert len(all_pairs) == 6 * 5 and ("ETH", "USD") in all_pairs
    no_ppt = supported_pairs({k: v for k, v in IDS.items() if k != "PPT"})
    assert len(no_ppt) == 5 * 4 and not any("PPT" in p for p in no_ppt)


@settings(max_examples=100, deadline=None)
@given(rate=rates)
def test_the_shown_rate_string_is_the_rate(rate):
    assert Decimal(rate_text(rate)) == rate and "E" not in rate_text(rate)


def test_snapshot_round_trips_exactly_through_its_document():
    s = snap(prices={"ethereum": {"usd": Decimal("3123.456789012345678901"), "khr": Decimal(1)}})
    again = Snapshot.from_doc(s.to_doc())
    assert again == s
    assert Snapshot.from_doc({"lease_until": T0}) is None


def test_merge_keeps_old_prices_with_their_old_times():
    old = snap()
    new = Snapshot("coingecko", T0 + dt.timedelta(minutes=1),
                   {"ethereum": {"usd": Decimal(3100), "khr": Decimal(12710000)}},
                   {"ethereum": int(T0.timestamp()) + 50})
    merged = new.merged_over(old)
    assert merged.prices["ethereum"]["usd"] == 3100
    assert merged.prices["peerpower"] == old.prices["peerpower"]
    assert merged.updated_at["peerpower"] == old.updated_at["peerpower"]
