"""Card top-ups: the production Stripe adapter against the loopback Stripe simulator, which
delivers signed webhooks to the inbox (``/v1/inbound/stripe``) served over real HTTP; the
wallet is credited when the inbox's task applies the event (``shared.wallet.inbound``)."""
import json
import time

import pytest
import requests

from infra.local.stripe_sim import sign
from shared.ledger import accounts
from shared.platform.errors import AuthenticationError
from shared.wallet.ports import verify_stripe_signature
from tests.support.polling import wait_for


def topup_doc(deps, topup_id):
    return deps.db.collection("wallet_topups").document(topup_id).get().to_dict()


def inbox_doc(deps, event_id):
    snap = deps.db.collection("inbound_events").document(f"stripe:{event_id}").get()
    return snap.to_dict() if snap.exists else None


def usd(deps, uid):
    acc = accounts.user_wallet_id(uid, "USD")
    return accounts.read_balances(deps.db, [acc]).get(acc, (None, accounts.Balances()))[1]


def test_topup_is_credited_once_by_the_signed_webhook(deps, wallet, user, stripe):
    uid, headers = user
    stripe.duplicate_deliveries = True            # Stripe may deliver an event twice
    r = wallet.post("/v1/wallet/topups", json={"amount": 2500, "asset": "USD",
                                               "payment_method": "pm_card_visa"},
                    headers={**headers, "Idempotency-Key": "top-1"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["provider_payment_id"].startswith("pi_") and body["status"] in ("pending", "succeeded")
    done = wait_for(lambda: (d := topup_doc(deps, body["id"]))["status"] == "succeeded" and d)
    stripe.wait_idle()
    assert done["transfer_id"] and usd(deps, uid).posted == 2500
    assert sorted(d["status"] for d in stripe.deliveries) == [200, 200]      # both acknowledged
    succeeded_event = stripe.events[-1]
    assert succeeded_event["type"] == "payment_intent.succeeded"
    stripe.resend(succeeded_event["id"])                                     # and a third time
    stripe.wait_idle()
    assert [d["status"] for d in stripe.deliveries][-1] == 200
    stored = wait_for(lambda: (d := inbox_doc(deps, succeeded_event["id"]))
                      and d["status"] == "processed" and d)
    assert stored["attempts"] == 1 and stored["result"] == "ok"             # stored and applied once
    assert usd(deps, uid).posted == 2500                                     # credited once
    hist = wallet.get("/v1/wallet/transactions", headers=headers).get_json()["data"]
    assert [(t["type"], t["amount"], t["balance_after"]["available"]) for t in hist] == [("topup", 2500, 2500)]
    succeeded = [e.to_dict() for e in deps.db.collection("events").stream() if e.get("type") == "topup.succeeded"]
    assert len(succeeded) == 1 and succeeded[0]["tenant"] == uid
    # Retrying the request replays; the provider saw one PaymentIntent.
    again = wallet.post("/v1/wallet/topups", json={"amount": 2500, "asset": "USD",
                                                   "payment_method": "pm_card_visa"},
                        headers={**headers, "Idempotency-Key": "top-1"})
    assert again.get_json()["id"] == body["id"] and len(stripe.intents) == 1


def test_declined_card_fails_the_topup_without_credit(deps, wallet, user, stripe):
    uid, headers = user
    r = wallet.post("/v1/wallet/topups", json={"amount_decimal": "10.00", "asset": "USD",
                                               "payment_method": "pm_card_chargeDeclined"}, headers=headers)
    assert r.status_code == 201 and r.get_json()["status"] == "failed"
    assert r.get_json()["failure_code"] == "card_declined"
    stripe.wait_idle()
    assert topup_doc(deps, r.get_json()["id"])["status"] == "failed"
    assert usd(deps, uid).posted == 0


def test_topup_bad_input(deps, wallet, user, stripe):
    _, headers = user
    for body, code in (({"amount": 100, "asset": "ETH"}, "asset_not_supported_for_topup"),
                       ({"amount": 0, "asset": "USD"}, "amount_not_positive"),
                       ({"amount_decimal": "1.001", "asset": "USD"}, "amount_too_precise"),
                       ({"amount": 10**9, "asset": "USD"}, "topup_too_large")):
        r = wallet.post("/v1/wallet/topups", json=body, headers=headers)
        assert 400 <= r.status_code < 500 and r.get_json()["error"]["code"] == code, r.get_json()


def test_webhook_rejects_bad_signatures_and_stale_timestamps(deps, inprocess_gateway, stripe):
    url = f"{inprocess_gateway}/v1/inbound/stripe"
    event = {"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded",
             "data": {"object": {"id": "pi_x", "amount": 100, "currency": "usd",
                                 "metadata": {"topup_id": "tpu_x"}}}}
    payload = json.dumps(event).encode()
    now = int(time.time())
    cases = [
        ({}, "missing Stripe-Signature"),
        ({"Stripe-Signature": sign("whsec_wrong", payload, now)}, "no signature matches"),
        ({"Stripe-Signature": sign(stripe.webhook_secret, payload, now - 301)}, "tolerance"),
        ({"Stripe-Signature": "garbage"}, "malformed"),
    ]
    for headers, reason in cases:
        r = requests.post(url, data=payload, headers={"Content-Type": "application/json", **headers})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_signature", r.text
        assert reason in r.json()["error"]["message"]
    assert inbox_doc(deps, "evt_forged") is None                             # nothing stored
    ok = requests.post(url, data=payload, headers={"Content-Type": "application/json",
                                                   "Stripe-Signature": sign(stripe.webhook_secret, payload, now)})
    assert ok.status_code == 200 and ok.json() == {"received": True, "duplicate": False}
    done = wait_for(lambda: (d := inbox_doc(deps, "evt_forged")) and d["status"] == "processed" and d)
    assert done["result"] == "unknown_topup"


def test_signature_scheme_matches_stripe():
    secret, body = "whsec_test", b'{"id":"evt_1"}'
    header = sign(secret, body, 1_700_000_000)
    verify_stripe_signature(body, header, secret, 1_700_000_100)
    # a rotated secret: any v1 may match
    verify_stripe_signature(body, header.replace("v1=", "v1=00,v1="), secret, 1_700_000_000)
    with pytest.raises(AuthenticationError):
        verify_stripe_signature(body + b" ", header, secret, 1_700_000_000)
    with pytest.raises(AuthenticationError):
        verify_stripe_signature(body, header, secret, 1_700_000_000 + 301)


def test_topup_key_reused_with_other_amount_after_record_loss_conflicts(deps, wallet, user, stripe):
    uid, headers = user
    h = {**headers, "Idempotency-Key": "top-x"}
    first = wallet.post("/v1/wallet/topups", json={"amount": 100, "asset": "USD",
                                                   "payment_method": "pm_card_visa"}, headers=h)
    assert first.status_code == 201
    for snap in deps.db.collection("idempotency_keys").stream():
        snap.reference.delete()
    r = wallet.post("/v1/wallet/topups", json={"amount": 200, "asset": "USD",
                                               "payment_method": "pm_card_visa"}, headers=h)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "exists_with_different_amount"
    stripe.wait_idle()
    wait_for(lambda: topup_doc(deps, first.get_json()["id"])["status"] == "succeeded")
    assert usd(deps, uid).posted == 100 and len(stripe.intents) == 1
