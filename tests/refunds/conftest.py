"""Refund test wiring: the payments fixtures (merchants with every role, payers, API keys),
the ``refunds`` function's client, and helpers that make a captured intent."""
from __future__ import annotations

import pytest

from shared.ledger import accounts, audit
from tests.chain.conftest import anvil_chain, chain  # noqa: F401  (module-scoped anvil)
from tests.payments.conftest import api_key, make_merchant, merchant, payer, payments  # noqa: F401

URL = "/v1/refunds"
PI_URL = "/v1/payment_intents"
FEES = {"fee_schedule": {"wallet": {"percent_bps": 250, "fixed": {"USD": 30}},
                         "crypto": {"percent_bps": 100}}}


@pytest.fixture
def refunds(function_client):
    return function_client("refunds")


def err(resp):
    return resp.get_json()["error"]


def balance(deps, account_id):
    got = accounts.read_balances(deps.db, [account_id])
    return got[account_id][1] if account_id in got else None


def assert_ledger_clean(deps):
    violations, _ = audit.check(audit.snapshot(deps.db))
    assert violations == [], violations[:3]


def wallet_paid_intent(client, shop, payer_headers, amount=1000, *, live=False):
    """An intent of ``shop`` paid from the payer's wallet (through the payments function). In
    test mode the test faucet pays (ADR 0031); ``live=True`` draws on the payer's real wallet."""
    r = client.post(PI_URL, json={"amount": amount, "currency": "USD"}, headers=shop.headers(live=live))
    assert r.status_code == 201, r.get_json()
    pi = r.get_json()
    r = client.post(f"{PI_URL}/{pi['id']}/pay", json={"client_secret": pi["client_secret"]},
                    headers=payer_headers)
    assert r.status_code == 200 and r.get_json()["status"] == "succeeded", r.get_json()
    return r.get_json()


def events_of(deps, object_id):
    """Types of the events whose object is ``object_id``, sorted (outbox records have random
    ids: their order is not the commit order)."""
    out = []
    for o in deps.db.collection("outbox").stream():
        for e in o.to_dict().get("events") or []:
            if (e.get("data") or {}).get("object", {}).get("id") == object_id:
                out.append(e["type"])
    return sorted(out)
