"""Webhooks end to end on the running stack, from outside, as a merchant's receiver sees them.

A card top-up goes in through the provider inbox (Stripe simulator → /v1/inbound/stripe → task →
ledger credit), its ``topup.succeeded`` event goes out through the fan-out and a Cloud Task to the
receiver simulator, which fails the first attempt: the retry arrives with the same webhook-id and
verifies with the PyPI ``standardwebhooks`` receiver. Then a secret rotation: during the grace
both secrets verify each delivery."""
import json
import time
import uuid

import pytest
import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.e2e import running_stack, signed_in_user

pytestmark = pytest.mark.e2e
stack = running_stack("demo-payloom-e2e-webhooks",
                      ("firestore", "pubsub", "tasks", "email", "stripe", "webhooks", "gateway"))


def _user(base):
    return signed_in_user(base, "h")[1]


def _inbox(sim, path, count, timeout=30.0):
    deadline = time.time() + timeout
    while True:
        got = requests.get(f"{sim}/_inbox", params={"path": path}, timeout=10).json()
        got = got.get("data", got) if isinstance(got, dict) else got
        if len(got) >= count or time.time() > deadline:
            return got
        time.sleep(0.2)


def _verify(secret, entry):
    Webhook(secret).verify(entry["body"], {k: v for k, v in entry["headers"].items()
                                           if k.startswith("webhook-")})


def test_topup_event_reaches_the_receiver_signed_and_retried_with_the_same_id(stack):
    base = f"http://127.0.0.1:{stack.ports.gateway}"
    sim = f"http://127.0.0.1:{stack.ports.webhooks}"
    path = "/hooks/" + uuid.uuid4().hex[:8]
    headers = _user(base)
    r = requests.post(f"{base}/v1/webhook_endpoints", headers=headers, timeout=30,
                      json={"url": sim + path, "enabled_events": ["topup.*"]})
    assert r.status_code == 201, r.text
    endpoint = r.json()
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    # the receiver is down for the first attempt
    assert requests.put(f"{sim}/_config{path}", json={"mode": "fail", "status": 503, "fail_times": 1},
                        timeout=10).status_code < 300

    r = requests.post(f"{base}/v1/wallet/topups", headers={**headers, "Idempotency-Key": "wh-top"},
                      json={"amount": 2500, "asset": "USD", "payment_method": "pm_card_visa"}, timeout=30)
    assert r.status_code == 201, r.text

    got = _inbox(sim, path, 2, timeout=40)   # the first retry waits 5 s (± jitter)
    assert [e["status"] for e in got[:2]] == [503, 200], got
    first, second = got[:2]
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    for entry in (first, second):
        _verify(secret, entry)
    event = json.loads(second["body"])
    assert event["type"] == "topup.succeeded" and event["id"] == second["headers"]["webhook-id"]
    assert event["data"]["object"]["amount"] == 2500
    with pytest.raises(WebhookVerificationError):
        _verify("whsec_" + "A" * 43 + "=", second)

    attempts = requests.get(f"{base}/v1/webhook_endpoints/{endpoint['id']}/attempts", headers=headers,
                            timeout=30).json()["data"]
    assert [a["status_code"] for a in attempts][:2] == [200, 503]   # newest first

    # rotate with a grace period: a test event is signed by both secrets
    r = requests.post(f"{base}/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", headers=headers,
                      json={"expires_in_seconds": 3600}, timeout=30)
    assert r.status_code == 200, r.text
    new_secret = r.json()["secret"]
    assert new_secret != secret
    r = requests.post(f"{base}/v1/webhook_endpoints/{endpoint['id']}/test", headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    test_entry = _inbox(sim, path, 3)[2]
    assert len(test_entry["headers"]["webhook-signature"].split(" ")) == 2
    _verify(secret, test_entry)
    _verify(new_secret, test_entry)

    # another tenant sees nothing of it
    other = _user(base)
    assert requests.get(f"{base}/v1/webhook_endpoints/{endpoint['id']}", headers=other,
                        timeout=30).status_code == 404
