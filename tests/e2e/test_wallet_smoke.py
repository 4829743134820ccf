"""Wallet end to end on the running stack: register two users, top up by card through the
Stripe simulator's signed webhook, pay by username, read balances and history."""
import time

import pytest
import requests

from tests.support.e2e import running_stack, signed_in_user

pytestmark = pytest.mark.e2e
stack = running_stack("demo-payloom-e2e-wallet",
                      ("firestore", "pubsub", "tasks", "email", "stripe", "gateway"))


def user(base):
    return signed_in_user(base, "w")


def usd(base, headers):
    data = requests.get(f"{base}/v1/wallet/balances", headers=headers, timeout=30).json()["data"]
    return next((b for b in data if b["asset"] == "USD"), None)


def test_topup_then_p2p_transfer(stack):
    base = f"http://127.0.0.1:{stack.ports.gateway}"
    alice, ah = user(base)
    bob, bh = user(base)
    r = requests.post(f"{base}/v1/wallet/topups", json={"amount": 5000, "asset": "USD", "payment_method": "pm_card_visa"},
                      headers={**ah, "Idempotency-Key": "e2e-top"}, timeout=30)
    assert r.status_code == 201, r.text
    deadline = time.time() + 20
    while time.time() < deadline and (usd(base, ah) or {}).get("available") != 5000:
        time.sleep(0.3)
    assert usd(base, ah)["available"] == 5000
    pay = {"to": {"username": bob}, "amount": 1250, "asset": "USD"}
    t1 = requests.post(f"{base}/v1/wallet/transfers", json=pay, headers={**ah, "Idempotency-Key": "e2e-p2p"}, timeout=30)
    t2 = requests.post(f"{base}/v1/wallet/transfers", json=pay, headers={**ah, "Idempotency-Key": "e2e-p2p"}, timeout=30)
    assert t1.status_code == 201, t1.text
    assert t2.content == t1.content
    assert usd(base, ah)["available"] == 3750 and usd(base, bh)["available"] == 1250
    too_much = requests.post(f"{base}/v1/wallet/transfers", json={**pay, "amount": 10_000},
                             headers={**ah, "Idempotency-Key": "e2e-p2p-2"}, timeout=30)
    assert 400 <= too_much.status_code < 500 and "error" in too_much.json()
    hist = requests.get(f"{base}/v1/wallet/transactions", headers=ah, timeout=30).json()["data"]
    assert [(h["type"], h["amount"], h["direction"], h["balance_after"]["available"]) for h in hist] == [
        ("p2p", 1250, "out", 3750), ("topup", 5000, "in", 5000)]
