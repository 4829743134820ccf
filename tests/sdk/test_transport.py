"""The SDK's transport against a scripted local server: idempotency keys, which answers are
retried and how long it waits, typed errors, headers and modes. No emulator needed."""
from __future__ import annotations

import socket
import threading
import uuid

import pytest

import payloom
from payloom.client import encode_query, parse_retry_after

ERR_503 = (503, {"Retry-After": "1"}, {"error": {"type": "api_error", "code": "contention",
                                                 "message": "retry", "param": None}})
CREATED = (201, {"Request-Id": "req_ok"}, {"object": "payment_intent", "id": "pi_1", "amount": 5})


def keys(stub):
    return [r["headers"].get("Idempotency-Key") for r in stub.requests]


def test_a_mutating_call_reuses_its_idempotency_key_across_retries_of_a_503(stub, stub_client, sleeps):
    stub.answer(ERR_503, ERR_503, CREATED)
    intent = stub_client().PaymentIntent.create(amount=5, currency="USD")
    assert intent.id == "pi_1" and isinstance(intent, payloom.PaymentIntent)
    sent = keys(stub)
    assert len(sent) == 3 and len(set(sent)) == 1
    assert uuid.UUID(sent[0]).version == 4
    assert intent.last_response.attempts == 3
    assert intent.last_response.idempotency_key == sent[0]
    assert intent.last_response.request_id == "req_ok"
    assert len(sleeps) == 2 and all(s >= 1.0 for s in sleeps)      # Retry-After: 1 honoured
    # the next call gets a new key
    stub.answer(CREATED)
    stub_client().PaymentIntent.create(amount=5, currency="USD")
    assert keys(stub)[-1] != sent[0]


def test_a_given_idempotency_key_is_sent_as_is_and_gets_never_sent_one(stub, stub_client):
    stub.answer(CREATED)
    client = stub_client()
    client.PaymentIntent.create(amount=5, currency="USD", idempotency_key="order-42")
    client.PaymentIntent.retrieve("pi_1")
    first, second = stub.requests
    assert first["headers"]["Idempotency-Key"] == "order-42"
    assert first["body"] == b'{"amount":5,"currency":"USD"}'           # options are not params
    assert first["headers"]["Content-Type"] == "application/json"
    assert "Idempotency-Key" not in second["headers"] and second["body"] == b""
    assert second["path"] == "/v1/payment_intents/pi_1"


def test_429_waits_at_least_retry_after_and_then_raises_the_typed_error(stub, stub_client, sleeps):
    limited = (429, {"Retry-After": "7", "Request-Id": "req_429"},
               {"error": {"type": "rate_limit_error", "code": "rate_limited", "message": "slow",
                          "param": None}})
    stub.answer(limited)
    with pytest.raises(payloom.RateLimitError) as info:
        stub_client(max_network_retries=2).Refund.list()
    assert len(stub.requests) == 3                                    # 1 + 2 retries
    assert sleeps and all(s >= 7 for s in sleeps)
    e = info.value
    assert (e.http_status, e.code, e.request_id, e.type) == (429, "rate_limited", "req_429",
                                                             "rate_limit_error")


def test_a_retry_after_longer_than_the_cap_is_not_waited_for(stub, stub_client, sleeps):
    stub.answer((429, {"Retry-After": "3600"}, {"error": {"type": "rate_limit_error",
                                                          "code": "login_locked", "message": "x"}}))
    with pytest.raises(payloom.RateLimitError):
        stub_client().PaymentIntent.create(amount=1, currency="USD")
    assert len(stub.requests) == 1 and sleeps == []


def test_backoff_grows_and_is_capped_with_jitter(stub, stub_client, sleeps):
    stub.answer((500, {}, {"error": {"type": "api_error", "code": "internal_error", "message": "x"}}))
    client = stub_client(max_network_retries=5, initial_network_retry_delay=0.5,
                         max_network_retry_delay=2.0)
    with pytest.raises(payloom.APIError) as info:
        client.Event.list()
    assert len(stub.requests) == 6 and info.value.http_status == 500
    bounds = [(0.25, 0.5), (0.5, 1.0), (1.0, 2.0), (1.0, 2.0), (1.0, 2.0)]
    assert len(sleeps) == 5
    for got, (lo, hi) in zip(sleeps, bounds, strict=True):
        assert lo <= got <= hi


@pytest.mark.parametrize("status,body,cls,retried", [
    (400, {"error": {"type": "invalid_request_error", "code": "parameter_invalid",
                     "message": "Invalid amount", "param": "amount"}}, payloom.InvalidRequestError, False),
    (401, {"error": {"type": "authentication_error", "code": "invalid_credentials",
                     "message": "no"}}, payloom.AuthenticationError, False),
    (403, {"error": {"type": "permission_error", "code": "missing_scope", "message": "no"}},
     payloom.PermissionError, False),
    (404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "no",
                     "param": "id"}}, payloom.InvalidRequestError, False),
    (409, {"error": {"type": "idempotency_error", "code": "idempotency_key_reused",
                     "message": "other params"}}, payloom.IdempotencyError, False),
    (409, {"error": {"type": "invalid_request_error", "code": "crypto_already_chosen",
                     "message": "no"}}, payloom.InvalidRequestError, False),
    (409, {"error": {"type": "idempotency_error", "code": "idempotency_key_in_use",
                     "message": "running"}}, payloom.IdempotencyError, True),
    (502, b"<html>bad gateway</html>", payloom.APIError, True),
])
def test_errors_are_typed_by_the_envelope_and_only_transient_ones_are_retried(
        stub, stub_client, sleeps, status, body, cls, retried):
    stub.answer((status, {"Request-Id": "req_x"}, body))
    with pytest.raises(cls) as info:
        stub_client(max_network_retries=1).PaymentIntent.create(amount=5, currency="USD")
    e = info.value
    assert e.http_status == status and e.request_id == "req_x"
    assert len(stub.requests) == (2 if retried else 1)
    assert e.idempotency_key == keys(stub)[0]
    if isinstance(body, dict):
        assert (e.code, e.param, e.message) == (body["error"]["code"], body["error"].get("param"),
                                                body["error"]["message"])
        assert e.type == body["error"]["type"]
    assert payloom.PermissionError is payloom.PermissionDeniedError
    assert not issubclass(payloom.PermissionError, OSError)           # not the builtin


def test_connection_refused_is_retried_then_raised_as_a_connection_error(sleeps):
    with socket.socket() as s:                                         # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = payloom.Client("sk_test_x", api_base=f"http://127.0.0.1:{port}", sleep=sleeps.append,
                            max_network_retries=2)
    with pytest.raises(payloom.APIConnectionError) as info:
        client.PaymentIntent.create(amount=1, currency="USD", idempotency_key="k-1")
    assert len(sleeps) == 2 and info.value.idempotency_key == "k-1"
    assert "sk_test_x" not in str(info.value)
    with pytest.raises(payloom.APIConnectionError) as info:   # a payer's secret in the query
        client.PaymentIntent.qr_code("pi_1", client_secret="pi_1_secret_hush")
    assert "Connection" in str(info.value) and "hush" not in str(info.value)
    assert info.value.__cause__ is None and info.value.idempotency_key is None


def test_headers_modes_and_keys(stub, stub_client):
    stub.answer((200, {}, {"object": "list", "data": [], "has_more": False, "url": "/v1/refunds"}))
    live = stub_client(api_key="sk_live_" + "b" * 43, merchant="mch_abcdefgh12")
    assert live.livemode is True and stub_client().livemode is False
    live.Refund.list(limit=3)
    h = stub.requests[-1]["headers"]
    assert h["Authorization"] == "Bearer sk_live_" + "b" * 43
    assert h["Payloom-Merchant"] == "mch_abcdefgh12" and "Payloom-Mode" not in h
    assert h["User-Agent"].startswith("payloom-python/0.1.0")
    assert stub.requests[-1]["path"] == "/v1/refunds?limit=3"
    # a user's access token picks its mode; a key's mode cannot be contradicted
    user = payloom.Client("eyJhbGciOi.jwt.token", api_base=stub.url, mode="live", merchant="mch_x")
    assert user.livemode is True
    user.Refund.list()
    assert stub.requests[-1]["headers"]["Payloom-Mode"] == "live"
    with pytest.raises(ValueError):
        payloom.Client("sk_test_" + "a" * 43, mode="live")
    with pytest.raises(ValueError):
        payloom.Client("x", mode="staging")
    # per-call options override the client's (and are never sent as parameters)
    stub_client().Refund.list(api_key="sk_test_other", merchant="mch_other000")
    h = stub.requests[-1]["headers"]
    assert h["Authorization"] == "Bearer sk_test_other" and h["Payloom-Merchant"] == "mch_other000"
    assert "sk_live_" not in repr(live)


def test_without_a_key_public_routes_work_and_others_say_why_they_fail(stub):
    stub.answer((200, {}, {"object": "rate", "base": "ETH", "quote": "USD", "rate": "3000"}),
                (401, {}, {"error": {"type": "authentication_error", "code": "missing_credentials",
                                     "message": "No valid Authorization: Bearer credential."}}))
    keyless = payloom.Client(None, api_base=stub.url)
    assert keyless.Rate.retrieve(base="ETH", quote="USD").rate == "3000"
    assert "Authorization" not in stub.requests[0]["headers"]
    assert stub.requests[0]["path"] == "/v1/rates?base=ETH&quote=USD"
    with pytest.raises(payloom.AuthenticationError, match="payloom.api_key"):
        keyless.PaymentIntent.list()


def test_module_level_configuration(stub, monkeypatch):
    monkeypatch.setattr(payloom, "api_key", "sk_test_" + "c" * 43)
    monkeypatch.setattr(payloom, "api_base", stub.url)
    stub.answer(CREATED)
    assert payloom.PaymentIntent.retrieve("pi_1").amount == 5
    first = payloom.default_client()
    assert payloom.default_client() is first
    monkeypatch.setattr(payloom, "api_key", "sk_live_" + "c" * 43)
    assert payloom.default_client() is not first and payloom.livemode() is True
    payloom.PaymentIntent.retrieve("pi_1")
    assert stub.requests[-1]["headers"]["Authorization"].endswith("sk_live_" + "c" * 43)


def test_objects_act_on_themselves_and_keep_their_client(stub, stub_client):
    stub.answer(CREATED, (200, {}, {"object": "payment_intent", "id": "pi_1", "status": "canceled"}))
    client = stub_client(merchant="mch_abcdefgh12")
    intent = client.PaymentIntent.create(amount=5, currency="USD")
    same = intent.cancel(cancellation_reason="abandoned")
    assert same is intent and intent.status == "canceled" and intent["status"] == "canceled"
    req = stub.requests[-1]
    assert (req["method"], req["path"]) == ("POST", "/v1/payment_intents/pi_1/cancel")
    assert req["headers"]["Payloom-Merchant"] == "mch_abcdefgh12"
    assert req["body"] == b'{"cancellation_reason":"abandoned"}'
    with pytest.raises(AttributeError):
        intent.nope  # noqa: B018
    assert intent.to_dict() == {"object": "payment_intent", "id": "pi_1", "status": "canceled"}


def test_binary_answers_and_queries():
    assert encode_query({"created": {"gte": 5, "lte": None}, "active": False, "from_": "ETH",
                         "limit": 3, "status": None}) == [
        ("created[gte]", "5"), ("active", "false"), ("from", "ETH"), ("limit", "3")]
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_a_qr_code_is_bytes(stub, stub_client):
    stub.answer((200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n..."))
    png = stub_client().PaymentIntent.qr_code("pi_1", client_secret="pi_1_secret_abc")
    assert png.startswith(b"\x89PNG")
    assert stub.requests[-1]["path"] == "/v1/payment_intents/pi_1/crypto/qr.png?client_secret=pi_1_secret_abc"
    with pytest.raises(ValueError):
        stub_client().PaymentIntent.qr_code("pi_1", format="gif")


def test_one_client_serves_threads(stub, stub_client):
    stub.answer(CREATED)
    client = stub_client()
    errors = []

    def work():
        try:
            for _ in range(10):
                assert client.PaymentIntent.create(amount=5, currency="USD").id == "pi_1"
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(keys(stub))) == 40
