"""quote/convert on the emulators with the simulator: cache costs, staleness, 429, leases."""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest

from bench.harness import RpcCounter
from shared.platform.errors import InvalidRequest, ServiceUnavailable
from shared.rates import service
from shared.rates.cache import CACHE_KEY, COLLECTION, RatesCache


def new_instance(deps) -> None:
    """What another Cloud Functions instance has: an empty process cache."""
    deps.extras[CACHE_KEY] = RatesCache()


def doc(deps) -> dict:
    return deps.db.collection(COLLECTION).document("coingecko").get().to_dict() or {}


def test_quote_then_cache_hits_cost_no_call_and_no_round_trip(deps, rates, sim, clock):
    q = service.quote(deps, "ETH", "USD")
    assert (q.base, q.quote, q.rate, q.source, q.stale) == ("ETH", "USD", "3000", "coingecko", False)
    assert q.as_of == clock.now()
    assert len(sim.calls()) == 1
    with RpcCounter() as rpc:
        for pair in [("ETH", "USD"), ("USDC", "KHR"), ("KHR", "USD"), ("PPT", "ETH")] * 25:
            service.quote(deps, *pair)
    assert rpc.total == 0 and len(sim.calls()) == 1          # 100 quotes: memory only
    new_instance(deps)
    with RpcCounter() as rpc:
        assert service.quote(deps, "eth", "usd").rate == "3000"
    assert rpc.counts == {"batch_get_documents": 1} and len(sim.calls()) == 1   # shared doc


def test_refresh_after_the_interval_costs_one_call_and_two_writes(deps, rates, sim, clock):
    service.quote(deps, "ETH", "USD")
    sim.set_prices({"ethereum": "3100.25"})
    clock.advance(59)
    assert service.quote(deps, "ETH", "USD").rate == "3000"
    clock.advance(2)
    with RpcCounter() as rpc:
        q = service.quote(deps, "ETH", "USD")
    assert q.rate == "3100.25" and q.stale is False and len(sim.calls()) == 2
    assert rpc.counts == {"batch_get_documents": 1, "commit": 2}, rpc.counts  # read, lease, snapshot
    stored = doc(deps)
    assert stored["prices"]["ethereum"]["usd"] == "3100.25" and "lease_until" not in stored


def test_a_stale_feed_is_refused_never_used(deps, rates, sim, clock):
    sim.configure(stale_by=301)
    with pytest.raises(ServiceUnavailable) as exc:
        service.quote(deps, "ETH", "USD")
    assert exc.value.code == "rates_unavailable" and exc.value.status == 503
    assert exc.value.headers["Retry-After"]
    with pytest.raises(ServiceUnavailable):
        service.convert(deps, 1000, "USD", "ETH")
    sim.configure(stale_by=299)
    clock.advance(61)
    assert service.quote(deps, "ETH", "USD").rate == "3000"


def test_feed_down_serves_within_the_limit_flagged_then_refuses(deps, rates, sim, clock):
    assert service.quote(deps, "ETH", "USD").stale is False
    sim.configure(fail_status=503, fail_count=None)
    clock.advance(61)
    q = service.quote(deps, "ETH", "USD")
    assert q.rate == "3000" and q.stale is True
    calls = len(sim.calls())
    assert calls == 2 and doc(deps)["backoff_until"] > clock.now()
    for _ in range(20):   # backing off: no instance asks again for 10 s
        service.quote(deps, "ETH", "USD")
    new_instance(deps)
    service.quote(deps, "ETH", "USD")
    assert len(sim.calls()) == calls
    clock.advance(300 - 61 + 1)    # the price is now 301 s old
    with pytest.raises(ServiceUnavailable):
        service.quote(deps, "ETH", "USD")
    sim.configure(fail_status=None)
    clock.advance(11)
    assert service.quote(deps, "ETH", "USD").stale is False   # recovered


def test_429_backs_off_for_retry_after_across_instances(deps, rates, sim, clock):
    service.quote(deps, "ETH", "USD")
    sim.configure(rate_limit=0, rate_window=60)
    clock.advance(61)
    assert service.quote(deps, "ETH", "USD").stale is True
    last = sim.calls()[-1]
    assert last["status"] == 429
    backoff = doc(deps)["backoff_until"]
    assert clock.now() + dt.timedelta(seconds=1) <= backoff <= clock.now() + dt.timedelta(seconds=60)
    calls = len(sim.calls())
    new_instance(deps)
    service.quote(deps, "ETH", "USD")
    assert len(sim.calls()) == calls
    sim.configure(rate_limit=None)
    clock.set(backoff + dt.timedelta(seconds=1))
    assert service.quote(deps, "ETH", "USD").stale is False and len(sim.calls()) == calls + 1


def test_cold_start_without_a_feed_is_503(deps, rates, sim):
    sim.configure(fail_status=500, fail_count=None)
    with pytest.raises(ServiceUnavailable) as exc:
        service.quote(deps, "ETH", "USD")
    assert exc.value.code == "rates_unavailable"


def test_another_instance_holding_the_lease_is_not_duplicated(deps, rates, sim, clock):
    service.quote(deps, "ETH", "USD")
    clock.advance(61)
    ref = deps.db.collection(COLLECTION).document("coingecko")
    ref.update({"lease_until": clock.now() + dt.timedelta(seconds=15)})
    new_instance(deps)
    q = service.quote(deps, "ETH", "USD")
    assert q.rate == "3000" and q.stale is True and len(sim.calls()) == 1


def test_concurrent_cold_quotes_make_one_feed_call(deps, rates, sim):
    sim.configure(delay_ms=300)
    caches = [RatesCache(), RatesCache()]   # two instances, four threads each
    results, errors = [], []

    def run(cache):
        try:
            snap = cache.current(deps)
            results.append(snap.prices["ethereum"]["usd"])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(caches[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [Decimal(3000)] * 8
    assert len(sim.calls()) == 1


def test_coins_the_feed_drops_keep_their_old_price_until_stale(deps, rates, sim, clock):
    service.quote(deps, "PPT", "USD")
    sim.set_prices({"peerpower": None})
    clock.advance(61)
    assert service.quote(deps, "ETH", "USD").stale is False
    assert service.quote(deps, "PPT", "USD").rate == "0.05"
    clock.advance(240)                   # ETH is refreshed, PPT's last price is 301 s old
    assert service.quote(deps, "ETH", "USD").rate == "3000"
    with pytest.raises(ServiceUnavailable):
        service.quote(deps, "PPT", "USD")


def test_a_coin_never_priced_is_503_and_an_unmapped_asset_400(deps, rates, sim):
    sim.set_prices({"peerpower": None})
    with pytest.raises(ServiceUnavailable, match="PPT"):
        service.quote(deps, "PPT", "USD")
    rates(rates_coin_ids={"ETH": "ethereum", "USDC": "usd-coin", "MUSD": "mezo-usd"})
    with pytest.raises(InvalidRequest) as exc:
        service.quote(deps, "PPT", "USD")
    assert exc.value.code == "rate_pair_unsupported"
    for bad in ["XYZ", "", None, 5, "E" * 40]:
        with pytest.raises(InvalidRequest):
            service.quote(deps, bad, "USD")


def test_convert_locks_an_exact_amount_rounded_up(deps, rates, sim, clock):
    c = service.convert(deps, 1000, "USD", "ETH")          # $10.00 at 3000 USD/ETH
    assert (c.amount, c.to_asset, c.from_amount, c.from_asset) == (3_333_334, "ETH", 1000, "USD")
    assert c.rounding == "up" and c.as_of == clock.now()
    assert c.expires_at == clock.now() + dt.timedelta(seconds=900)
    assert Decimal(c.rate) * 3000 - 1 < Decimal("1e-19")
    assert service.convert(deps, 1000, "USD", "ETH", rounding="down").amount == 3_333_333
    assert service.convert(deps, 1000, "USD", "ETH", lock_seconds=60).expires_at == \
        clock.now() + dt.timedelta(seconds=60)
    assert service.convert(deps, 250, "USD", "KHR").amount == 10_250
    assert service.convert(deps, 5_000_000, "USDC", "USDC").amount == 5_000_000
    # USDC at 0.9998: $10.00 costs 10.002001 USDC (rounded up from 10.0020004..)
    sim.set_prices({"usd-coin": "0.9998"})
    clock.advance(61)
    assert service.convert(deps, 1000, "USD", "USDC").amount == 10_002_001


@pytest.mark.parametrize("amount", [0, -1, 2**63, True, 1.5, "100"])
def test_convert_refuses_bad_amounts(deps, rates, amount):
    with pytest.raises(InvalidRequest):
        service.convert(deps, amount, "USD", "ETH")
