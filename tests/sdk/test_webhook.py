"""``payloom.Webhook`` agrees with the reference receiver (PyPI ``standardwebhooks``) both ways:
what one signs the other verifies, and every tampering is refused by both. Payloom's own
signer (``shared.webhooks.signing``) is verified too, through a secret rotation."""
from __future__ import annotations

import base64
import json
import secrets
import time

import pytest
import standardwebhooks

import payloom
from payloom.webhook import WebhookSignature
from shared.webhooks import signing

BODY = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                   "created": "2026-12-01T00:00:00Z", "livemode": False,
                   "data": {"object": {"id": "pi_1", "object": "payment_intent", "amount": 5}}},
                  separators=(",", ":")).encode()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def reference_accepts(body: bytes, headers: dict, secret: str) -> bool:
    try:
        standardwebhooks.Webhook(secret).verify(body, headers)
        return True
    except standardwebhooks.WebhookVerificationError:
        return False


def sdk_accepts(body: bytes, headers: dict, secret) -> bool:
    try:
        payloom.Webhook.construct_event(body, headers, secret)
        return True
    except payloom.SignatureVerificationError:
        return False


def test_sdk_signatures_verify_with_the_reference_and_back():
    secret = new_secret()
    ours = WebhookSignature.headers(secret, "msg_1", BODY)
    assert standardwebhooks.Webhook(secret).verify(BODY, ours)["id"] == "evt_1"
    now = time.time()
    from datetime import datetime, timezone
    theirs_sig = standardwebhooks.Webhook(secret).sign("msg_2", datetime.fromtimestamp(now, tz=timezone.utc),
                                                       BODY.decode())
    theirs = {"webhook-id": "msg_2", "webhook-timestamp": str(int(now)), "webhook-signature": theirs_sig}
    event = payloom.Webhook.construct_event(BODY, theirs, secret)
    assert isinstance(event, payloom.Event) and event.type == "payment_intent.succeeded"
    assert isinstance(event.data.object, payloom.PaymentIntent) and event.data.object.amount == 5
    # the secret without its prefix, and headers in any case, as the reference accepts them
    upper = {k.upper(): v for k, v in theirs.items()}
    assert payloom.Webhook.construct_event(BODY, upper, secret[len("whsec_"):]).id == "evt_1"


def test_payloom_signed_deliveries_verify_during_a_secret_rotation():
    old, new = signing.new_secret(), signing.new_secret()
    ts = int(time.time())
    headers = signing.headers([new, old], "evt_1", ts, BODY)        # both sign while rotating
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert sdk_accepts(BODY, headers, secret) and reference_accepts(BODY, headers, secret)
    assert sdk_accepts(BODY, headers, [new_secret(), old])           # a receiver holding both
    stranger = new_secret()
    assert not sdk_accepts(BODY, headers, stranger) and not reference_accepts(BODY, headers, stranger)


def _cases(secret: str):
    now = int(time.time())
    good = WebhookSignature.headers(secret, "msg_1", BODY, timestamp=now)
    other = new_secret()
    yield "valid", BODY, good, True
    yield "wrong secret", BODY, WebhookSignature.headers(other, "msg_1", BODY, timestamp=now), False
    yield "tampered body", BODY.replace(b'"amount":5', b'"amount":6'), good, False
    yield "other id", BODY, {**good, "webhook-id": "msg_2"}, False
    yield "stale", BODY, WebhookSignature.headers(secret, "m", BODY, timestamp=now - 310), False
    yield "nearly stale", BODY, WebhookSignature.headers(secret, "m", BODY, timestamp=now - 290), True
    yield "from the future", BODY, WebhookSignature.headers(secret, "m", BODY, timestamp=now + 310), False
    yield "shifted timestamp", BODY, {**good, "webhook-timestamp": str(now - 1)}, False
    yield "missing signature", BODY, {k: v for k, v in good.items() if k != "webhook-signature"}, False
    yield "missing id", BODY, {k: v for k, v in good.items() if k != "webhook-id"}, False
    v1a = good["webhook-signature"].replace("v1,", "v1a,")
    yield "only v1a", BODY, {**good, "webhook-signature": v1a}, False
    yield "v2 then v1", BODY, {**good, "webhook-signature": "v2,AAAA " + good["webhook-signature"]}, True
    yield "two, one good", BODY, {**good, "webhook-signature": WebhookSignature.headers(
        other, "msg_1", BODY, timestamp=now)["webhook-signature"] + " " + good["webhook-signature"]}, True
    yield "garbage timestamp", BODY, {**good, "webhook-timestamp": "soon"}, False


@pytest.mark.parametrize("name", [c[0] for c in _cases(new_secret())])
def test_every_case_is_judged_as_the_reference_judges_it(name):
    secret = new_secret()
    case = next(c for c in _cases(secret) if c[0] == name)
    _, body, headers, expected = case
    assert sdk_accepts(body, headers, secret) is expected
    assert reference_accepts(body, headers, secret) is expected


def test_tolerance_is_configurable_and_errors_are_clear():
    secret = new_secret()
    old = WebhookSignature.headers(secret, "m", BODY, timestamp=int(time.time()) - 3600)
    with pytest.raises(payloom.SignatureVerificationError, match="too old"):
        payloom.Webhook.construct_event(BODY, old, secret)
    assert payloom.Webhook.construct_event(BODY, old, secret, tolerance=None).id == "evt_1"
    assert payloom.Webhook.construct_event(BODY, old, secret, tolerance=7200).id == "evt_1"
    with pytest.raises(ValueError):
        payloom.Webhook.construct_event(BODY, old, "whsec_!!!not base64")
    not_json = b"hello"
    with pytest.raises(payloom.SignatureVerificationError, match="not JSON"):
        payloom.Webhook.construct_event(not_json, WebhookSignature.headers(secret, "m", not_json), secret)
    # a str payload verifies like its UTF-8 bytes
    fresh = WebhookSignature.headers(secret, "m", BODY)
    assert payloom.Webhook.construct_event(BODY.decode(), fresh, secret).id == "evt_1"
