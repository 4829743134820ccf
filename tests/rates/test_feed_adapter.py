"""The production CoinGecko adapter against the CoinGecko-protocol simulator (real HTTP)."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests

from infra.local import price_sim
from shared.adapters.price_coingecko import (
    CoinGeckoPriceFeed,
    FeedRateLimited,
    FeedUnavailable,
)
from tests.rates.conftest import API_KEY

IDS, VS = ["ethereum", "usd-coin", "mezo-usd", "peerpower"], ["usd", "khr"]


def test_fetch_is_one_call_with_exact_decimals_and_provider_times(sim, feed, clock):
    sim.set_prices({"ethereum": "3123.456789012345678", "usd-coin": "0.99987"}, {"khr": "4012.5"})
    got = feed.fetch(IDS + ["no-such-coin"], VS)
    assert got.prices["ethereum"]["usd"] == Decimal("3123.456789012345678")   # never a float
    assert got.prices["ethereum"]["khr"] == Decimal("3123.456789012345678") * Decimal("4012.5")
    assert got.prices["usd-coin"] == {"usd": Decimal("0.99987"),
                                      "khr": Decimal("0.99987") * Decimal("4012.5")}
    assert "no-such-coin" not in got.prices and set(got.prices) == set(IDS)
    assert got.updated_at["ethereum"] == int(clock.now().timestamp())
    calls = sim.calls()
    assert len(calls) == 1
    q = calls[0]["query"]
    assert q["include_last_updated_at"] == "true" and q["precision"] == "full"
    assert q["ids"].split(",") == sorted(IDS + ["no-such-coin"]) and q["vs_currencies"] == "khr,usd"
    assert calls[0]["key_header"] == "x-cg-demo-api-key"
    assert API_KEY not in json.dumps(calls) and API_KEY not in repr(feed)


def test_pro_key_goes_in_the_pro_header():
    server, url = price_sim.start(api_key="CG-pro", key_kind="pro")
    try:
        pro = CoinGeckoPriceFeed("CG-pro", key_kind="pro", base_url=url + "/api/v3")
        assert pro.fetch(["ethereum"], ["usd"]).prices["ethereum"]["usd"] == Decimal(3000)
        demo = CoinGeckoPriceFeed("CG-pro", key_kind="demo", base_url=url + "/api/v3")
        with pytest.raises(FeedUnavailable, match="401"):   # 10011: demo key on a pro server
            demo.fetch(["ethereum"], ["usd"])
        body = requests.get(url + "/api/v3/simple/price?ids=ethereum&vs_currencies=usd",
                            headers={"x-cg-demo-api-key": "CG-pro"}, timeout=5).json()
        assert body["status"]["error_code"] == 10011
    finally:
        server.stop()


def test_default_base_urls_follow_the_key_kind():
    assert CoinGeckoPriceFeed("k").base_url == "https://api.coingecko.com/api/v3"
    assert CoinGeckoPriceFeed("k", key_kind="pro").base_url == "https://pro-api.coingecko.com/api/v3"
    with pytest.raises(ValueError):
        CoinGeckoPriceFeed("k", key_kind="enterprise")


@pytest.mark.parametrize("key,code", [("", 10002), ("CG-wrong", 10002)])
def test_missing_or_wrong_key_is_unavailable_not_a_price(sim, key, code):
    with pytest.raises(FeedUnavailable, match="401"):
        CoinGeckoPriceFeed(key, base_url=sim.api).fetch(IDS, VS)
    assert sim.calls()[-1]["status"] == 401


def test_429_carries_retry_after(sim, feed):
    sim.configure(rate_limit=2, rate_window=60)
    feed.fetch(IDS, VS)
    feed.fetch(IDS, VS)
    with pytest.raises(FeedRateLimited) as exc:
        feed.fetch(IDS, VS)
    assert 1 <= exc.value.retry_after <= 60
    last = sim.calls()[-1]
    assert last["status"] == 429
    raw = requests.get(sim.api + "/simple/price?ids=ethereum&vs_currencies=usd",
                       headers={"x-cg-demo-api-key": API_KEY}, timeout=5)
    assert raw.status_code == 429 and int(raw.headers["Retry-After"]) >= 1
    assert raw.json()["status"]["error_code"] == 429


@pytest.mark.parametrize("config", [{"fail_status": 500, "fail_count": 1},
                                    {"fail_status": 503, "fail_count": 1},
                                    {"malformed": True}, {"delay_ms": 1500}])
def test_outages_and_garbage_are_feed_unavailable(sim, config):
    sim.configure(**config)
    quick = CoinGeckoPriceFeed(API_KEY, base_url=sim.api, timeout=0.5)
    with pytest.raises(FeedUnavailable):
        quick.fetch(IDS, VS)


def test_a_failure_once_then_success(sim, feed):
    sim.configure(fail_status=503, fail_count=1)
    with pytest.raises(FeedUnavailable):
        feed.fetch(IDS, VS)
    assert feed.fetch(IDS, VS).prices["ethereum"]["usd"] == Decimal(3000)


def test_unreachable_feed_is_unavailable():
    with pytest.raises(FeedUnavailable, match="unreachable"):
        CoinGeckoPriceFeed(API_KEY, base_url="http://127.0.0.1:9/api/v3", timeout=0.5).fetch(IDS, VS)


def test_unusable_entries_are_dropped_not_trusted():
    """What the parser refuses: no time, zero, negative, strings, NaN-like; the rest is kept."""
    feed = CoinGeckoPriceFeed("k")
    raw = ('{"a": {"usd": 1.5, "khr": 6150, "last_updated_at": 1700000000},'
           ' "b": {"usd": 2.5},'                                        # no time
           ' "c": {"usd": 0, "khr": -3, "last_updated_at": 1700000000},'
           ' "d": {"usd": "7", "last_updated_at": 1700000000},'
           ' "e": {"usd": 1.5, "last_updated_at": 1.5},'
           ' "f": [1, 2]}')
    body = json.loads(raw, parse_float=Decimal, parse_int=Decimal)
    got = feed._parse(body, ["a", "b", "c", "d", "e", "f", "g"], ["usd", "khr"])
    assert got.prices == {"a": {"usd": Decimal("1.5"), "khr": Decimal(6150)}}
    assert got.updated_at == {"a": 1700000000}


def test_non_finite_numbers_are_refused(sim, monkeypatch):
    class Resp:
        status_code, headers, content = 200, {}, b'{"ethereum": {"usd": NaN, "last_updated_at": 1}}'

    feed = CoinGeckoPriceFeed("k", base_url=sim.api)
    monkeypatch.setattr(feed.session, "get", lambda *a, **k: Resp())
    with pytest.raises(FeedUnavailable, match="not JSON"):
        feed.fetch(["ethereum"], ["usd"])


def test_simulator_protocol_details(sim):
    h = {"x-cg-demo-api-key": API_KEY}
    get = lambda q: requests.get(sim.api + "/simple/price?" + q, headers=h, timeout=5)
    sim.set_prices({"ethereum": "3000.123456"}, {"khr": "4100"})
    assert get("ids=ethereum&vs_currencies=usd&precision=2").json() == {"ethereum": {"usd": 3000.12}}
    assert get("ids=ethereum&vs_currencies=usd,xyz").json() == {"ethereum": {"usd": 3000.12}}
    assert get("ids=nothing&vs_currencies=usd").json() == {}
    assert get("ids=ethereum").status_code == 400
    assert get("vs_currencies=usd").status_code == 400
    assert get("ids=ethereum&vs_currencies=usd&precision=99").status_code == 400
    assert requests.get(sim.api + "/ping", headers=h, timeout=5).json()["gecko_says"]
    assert "khr" in requests.get(sim.api + "/simple/supported_vs_currencies", headers=h, timeout=5).json()
    assert requests.put(sim.url + "/_prices", json={"prices": {"x": "-1"}}, timeout=5).status_code == 400
    assert requests.put(sim.url + "/_config", json={"nope": 1}, timeout=5).status_code == 400
    sim.set_prices({"ethereum": None})
    assert get("ids=ethereum&vs_currencies=usd").json() == {}


def test_stale_and_frozen_feeds_report_old_times(sim, feed, clock):
    sim.configure(stale_by=900)
    assert feed.fetch(["ethereum"], ["usd"]).updated_at["ethereum"] == int(clock.now().timestamp()) - 900
    sim.configure(stale_by=0, frozen=True)
    set_at = int(clock.now().timestamp())
    clock.advance(120)
    assert feed.fetch(["ethereum"], ["usd"]).updated_at["ethereum"] == set_at
