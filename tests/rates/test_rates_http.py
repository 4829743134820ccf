"""/v1/rates through the rates function (functions-framework client), hostile input included."""
from __future__ import annotations

import pytest


@pytest.fixture
def api(function_client, rates):
    return function_client("rates")


def test_get_a_rate_publicly(api, sim, clock):
    r = api.get("/v1/rates?base=eth&quote=KHR")
    assert r.status_code == 200, r.data
    body = r.get_json()
    assert body == {"object": "rate", "base": "ETH", "quote": "KHR", "rate": "12300000",
                    "as_of": int(clock.now().timestamp()), "source": "coingecko", "stale": False}
    assert r.headers["X-RateLimit-Limit"] == "600"


def test_pairs(api):
    body = api.get("/v1/rates/pairs").get_json()
    assert body["object"] == "list" and body["has_more"] is False and len(body["data"]) == 30
    assert {"base": "MUSD", "quote": "KHR"} in body["data"]


def test_convert_decimal_and_minor_amounts(api, clock):
    r = api.get("/v1/rates/convert?amount=10.00&from=USD&to=ETH")
    assert r.status_code == 200, r.data
    c = r.get_json()
    assert (c["amount"], c["amount_decimal"], c["from_amount"], c["from_amount_decimal"]) == \
        (3_333_334, "0.003333334", 1000, "10.00")
    assert c["rounding"] == "up" and c["expires_at"] == int(clock.now().timestamp()) + 900
    down = api.get("/v1/rates/convert?amount_minor=1000&from=usd&to=eth&rounding=down").get_json()
    assert down["amount"] == 3_333_333 and down["rate"] == c["rate"]
    khr = api.get("/v1/rates/convert?amount=1&from=ETH&to=KHR").get_json()
    assert khr["amount"] == 12_300_000 and khr["amount_decimal"] == "12300000"


@pytest.mark.parametrize("query,code", [
    ("base=XXX&quote=USD", "asset_unknown"),
    ("base=ETH", "parameter_missing"),
    ("base=ETH&quote=USD&x=1", "parameter_unknown"),
    ("base=" + "E" * 300 + "&quote=USD", "parameter_invalid"),
    ("base=%00&quote=USD", "asset_unknown"),
    ("base=%E2%80%AE&quote=USD", "asset_unknown"),
])
def test_rate_bad_input_is_a_400(api, query, code):
    r = api.get("/v1/rates?" + query)
    assert r.status_code == 400, r.data
    assert r.get_json()["error"]["code"] == code


@pytest.mark.parametrize("query,code", [
    ("amount=1.001&from=USD&to=ETH", "amount_too_precise"),
    ("amount=0.0000000001&from=ETH&to=USD", "amount_too_precise"),
    ("amount=-1&from=USD&to=ETH", "amount_invalid"),
    ("amount=1e3&from=USD&to=ETH", "amount_invalid"),
    ("amount=NaN&from=USD&to=ETH", "amount_invalid"),
    ("amount=0&from=USD&to=ETH", "amount_not_positive"),
    ("amount=99999999999999999999&from=USD&to=ETH", "amount_too_large"),
    ("amount_minor=0&from=USD&to=ETH", "parameter_invalid"),
    ("amount_minor=9223372036854775808&from=USD&to=ETH", "parameter_invalid"),
    ("amount_minor=1.5&from=USD&to=ETH", "parameter_invalid"),
    ("amount_minor=9223372036854775807&from=USD&to=KHR", "amount_too_large"),
    ("amount=1&amount_minor=100&from=USD&to=ETH", "parameter_invalid"),
    ("from=USD&to=ETH", "parameter_invalid"),
    ("amount=1&from=DOGE&to=ETH", "asset_unknown"),
    ("amount=1&from=USD&to=DOGE", "asset_unknown"),
    ("amount=1&from=USD", "parameter_missing"),
    ("amount=1&from=USD&to=ETH&rounding=sideways", "parameter_invalid"),
    ("amount=1&from_=USD&to=ETH", "parameter_missing"),
    ("amount=1&from=USD&to=ETH&from_=USD", "parameter_unknown"),
])
def test_convert_bad_input_is_a_400(api, sim, query, code):
    r = api.get("/v1/rates/convert?" + query)
    assert r.status_code == 400, r.data
    assert r.get_json()["error"]["code"] == code
    assert sim.calls() == [] or code in ("amount_too_large",)   # refused before the feed


def test_unavailable_feed_is_a_503_envelope(api, sim):
    sim.configure(fail_status=503, fail_count=None)
    r = api.get("/v1/rates?base=ETH&quote=USD")
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert r.get_json()["error"] == {"type": "api_error", "code": "rates_unavailable",
                                     "message": r.get_json()["error"]["message"], "param": None}


def test_writes_are_not_allowed(api):
    assert api.post("/v1/rates", json={}).status_code == 405
