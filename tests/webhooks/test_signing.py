"""Standard Webhooks signatures, verified with the reference receiver (PyPI ``standardwebhooks``)."""
from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.webhooks import signing

BODY = json.dumps({"id": "evt_1", "object": "event", "type": "topup.succeeded",
                   "created": "2026-01-01T00:00:00Z", "livemode": False,
                   "data": {"object": {"id": "top_1", "amount": 1250, "note": "café ✓"}}},
                  separators=(",", ":"), ensure_ascii=False).encode()


def now() -> int:
    return int(time.time())


def test_secret_format():
    for nbytes in (24, 32, 64):
        secret = signing.new_secret(nbytes)
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[len("whsec_"):], validate=True)) == nbytes
    assert signing.new_secret() != signing.new_secret()
    assert len(signing.secret_key(signing.new_secret())) == 32  # the default
    for nbytes in (0, 23, 65):
        with pytest.raises(ValueError):
            signing.new_secret(nbytes)
    for bad in ("sk_test_abc", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            signing.secret_key(bad)


def test_headers_verify_with_the_reference_receiver():
    secret = signing.new_secret()
    ts = now()
    headers = signing.headers([secret], "evt_1", ts, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"}
    assert headers["webhook-id"] == "evt_1" and headers["webhook-timestamp"] == str(ts)
    assert headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_every_live_secret_signs_during_a_rotation():
    old, new = signing.new_secret(), signing.new_secret(48)
    headers = signing.headers([new, old], "evt_2", now(), BODY)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    # a receiver holding either secret verifies
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)
    # after the grace only the new one signs: the old secret no longer verifies
    after = signing.headers([new], "evt_2", now(), BODY)
    Webhook(new).verify(BODY, after)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(BODY, after)


def test_tampering_fails_verification():
    secret = signing.new_secret()
    ts = now()
    headers = signing.headers([secret], "evt_3", ts, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"1250", b"9250"), headers)
    with pytest.raises(WebhookVerificationError):  # the id is signed
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "evt_other"})
    with pytest.raises(WebhookVerificationError):  # so is the timestamp
        Webhook(secret).verify(BODY, {**headers, "webhook-timestamp": str(ts - 1)})
    with pytest.raises(WebhookVerificationError):  # another secret
        Webhook(signing.new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):  # replayed much later
        old = signing.headers([secret], "evt_3", ts - 3600, BODY)
        Webhook(secret).verify(BODY, old)


def test_signature_is_the_spec_computation():
    """The spec's own example (standard-webhooks.com): fixed secret, id, timestamp and body."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
            == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    with pytest.raises(ValueError):
        signing.signature_header([], "evt", 1, body)
