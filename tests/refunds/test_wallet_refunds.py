"""Wallet refunds over HTTP: partial then full (reversals of the payment's legs, the fee returned
in proportion), over-refund refused, concurrent refunds capped, idempotency, isolation, roles;
ledger invariants after each scenario."""
from __future__ import annotations

import threading

from shared.ledger import accounts
from shared.payments import settlement
from tests.ledger.conftest import fund
from tests.refunds.conftest import (
    FEES,
    URL,
    assert_ledger_clean,
    balance,
    err,
    events_of,
    wallet_paid_intent,
)


def _accounts(m):
    return (settlement.settlement_template(m.id, "USD", True).id,
            settlement.fees_template("USD", True).id)


def test_partial_then_full_wallet_refund(deps, payments, refunds, make_merchant, payer):
    m = make_merchant(("owner", "support", "viewer"), settings=FEES)
    uid, ph = payer
    fund(deps, uid, 10_000)
    pi = wallet_paid_intent(payments, m, ph, live=True)
    settle_acc, fees_acc = _accounts(m)
    wallet = accounts.user_wallet_id(uid, "USD")
    assert balance(deps, wallet).available == 9000
    assert (balance(deps, settle_acc).posted, balance(deps, fees_acc).posted) == (945, 55)

    r = refunds.post(URL, json={"payment_intent": pi["id"], "amount": 400,
                                "reason": "requested_by_customer", "metadata": {"ticket": "9"}},
                     headers=m.headers("support", live=True))
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    assert first["status"] == "succeeded" and first["method"] == "wallet"
    assert first["amount"] == 400 and first["currency"] == "USD" and first["succeeded_at"]
    assert first["ledger"] == {"asset": "USD", "amount": 400, "merchant_share": 378,
                               "fee_share": 22, "transfer_ids": first["ledger"]["transfer_ids"]}
    assert len(first["ledger"]["transfer_ids"]) == 2
    assert balance(deps, wallet).available == 9400
    assert (balance(deps, settle_acc).posted, balance(deps, fees_acc).posted) == (567, 33)
    # the ledger transfers ARE reversals of the payment's legs
    net_id, fee_id = settlement.transfer_ids(pi["id"], f"wallet:{uid}", 0)
    reversed_ = {d.get("reverses"): d.get("amount") for d in
                 (deps.db.collection("ledger_transfers").document(t).get().to_dict()
                  for t in first["ledger"]["transfer_ids"])}
    assert reversed_ == {net_id: 378, fee_id: 22}

    over = refunds.post(URL, json={"payment_intent": pi["id"], "amount": 601},
                        headers=m.headers("support", live=True))
    assert over.status_code == 400 and err(over)["code"] == "amount_too_large"
    assert err(over)["param"] == "amount"

    rest = refunds.post(URL, json={"payment_intent": pi["id"]}, headers=m.headers("owner", live=True))
    assert rest.status_code == 201, rest.get_json()
    second = rest.get_json()
    assert second["amount"] == 600 and second["ledger"]["fee_share"] == 33
    assert second["ledger"]["merchant_share"] == 567
    assert balance(deps, wallet).available == 10_000
    assert (balance(deps, settle_acc).posted, balance(deps, fees_acc).posted) == (0, 0)

    again = refunds.post(URL, json={"payment_intent": pi["id"], "amount": 1},
                         headers=m.headers("owner", live=True))
    assert again.status_code == 409 and err(again)["code"] == "charge_already_refunded"

    # reads: one, the list of the intent, and the intent's own totals
    got = refunds.get(f"{URL}/{first['id']}", headers=m.headers("viewer", live=True))
    assert got.status_code == 200 and got.get_json() == first
    listed = refunds.get(URL, query_string={"payment_intent": pi["id"]}, headers=m.headers("viewer", live=True))
    assert [x["id"] for x in listed.get_json()["data"]] == [second["id"], first["id"]]
    doc = deps.db.collection("payment_intents").document(pi["id"]).get().to_dict()
    assert doc["refund_totals"] == {"amount": 1000, "ledger": 1000, "fee": 55, "net": 945}
    assert doc["status"] == "succeeded"                 # a refund does not change the intent
    assert events_of(deps, first["id"]) == ["refund.created", "refund.succeeded"]
    assert_ledger_clean(deps)


def test_refusals_roles_isolation_and_idempotency(deps, payments, refunds, make_merchant, payer,
                                                  api_key):
    m = make_merchant(("owner", "support", "viewer"), settings=FEES)
    other = make_merchant(("owner",))
    uid, ph = payer
    fund(deps, uid, 10_000)
    pi = wallet_paid_intent(payments, m, ph, live=True)
    body = {"payment_intent": pi["id"], "amount": 100}
    # roles: a viewer cannot refund; another merchant, the other mode, a bad id: the same 404
    r = refunds.post(URL, json=body, headers=m.headers("viewer", live=True))
    assert r.status_code == 403 and err(r)["code"] == "insufficient_role"
    for h in (other.headers(live=True), m.headers()):
        r = refunds.post(URL, json=body, headers=h)
        assert r.status_code == 404 and err(r)["param"] == "payment_intent", r.get_json()
    for bad in ("pi_nope", "nope", "re_x"):
        r = refunds.post(URL, json={"payment_intent": bad}, headers=m.headers(live=True))
        assert r.status_code == 404
    # bad input: 400, nothing moved
    for bad in ({"payment_intent": pi["id"], "amount": 0}, {"payment_intent": pi["id"], "amount": "5"},
                {"payment_intent": pi["id"], "extra": 1},
                {"payment_intent": pi["id"], "address": "0x" + "11" * 20}):
        r = refunds.post(URL, json=bad, headers=m.headers(live=True))
        assert r.status_code == 400, (bad, r.get_json())
    # an intent not captured
    open_pi = payments.post("/v1/payment_intents", json={"amount": 500, "currency": "USD"},
                            headers=m.headers(live=True)).get_json()
    r = refunds.post(URL, json={"payment_intent": open_pi["id"]}, headers=m.headers(live=True))
    assert r.status_code == 409 and err(r)["code"] == "intent_not_refundable"
    # idempotency: the same key twice is one refund; an API key with payments:write may refund
    key = api_key(m.id, livemode=True)
    h = {"Authorization": f"Bearer {key}", "Idempotency-Key": "refund-once"}
    a = refunds.post(URL, json=body, headers=h)
    b = refunds.post(URL, json=body, headers=h)
    assert a.status_code == b.status_code == 201 and a.get_json()["id"] == b.get_json()["id"]
    assert balance(deps, accounts.user_wallet_id(uid, "USD")).available == 9100
    # a read-only key cannot refund; reads of another merchant's refund are 404
    ro = api_key(m.id, scopes=("payments:read",), livemode=True)
    r = refunds.post(URL, json=body, headers={"Authorization": f"Bearer {ro}"})
    assert r.status_code == 403
    assert refunds.get(f"{URL}/{a.get_json()['id']}", headers=other.headers(live=True)).status_code == 404
    assert refunds.get(f"{URL}/{a.get_json()['id']}", headers=m.headers()).status_code == 404
    assert refunds.get(URL, query_string={"payment_intent": pi["id"]},
                       headers=other.headers(live=True)).get_json()["data"] == []
    assert_ledger_clean(deps)


def test_concurrent_refunds_never_exceed_the_captured_amount(deps, payments, function_client,
                                                             make_merchant, payer):
    m = make_merchant(("owner",), settings=FEES)
    uid, ph = payer
    fund(deps, uid, 10_000)
    pi = wallet_paid_intent(payments, m, ph, live=True)
    n, each = 6, 300
    results: list[tuple[int, str | None]] = []
    barrier = threading.Barrier(n)

    def go():
        client = function_client("refunds")
        barrier.wait()
        r = client.post(URL, json={"payment_intent": pi["id"], "amount": each}, headers=m.headers(live=True))
        body = r.get_json()
        results.append((r.status_code, None if r.status_code < 300 else body["error"]["code"]))

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [c for c, _ in results if c == 201]
    assert 1 <= len(ok) <= 3, results
    assert all(code in ("amount_too_large", "contention") for c, code in results if c != 201), results
    refunded = 300 * len(ok)
    assert balance(deps, accounts.user_wallet_id(uid, "USD")).available == 9000 + refunded
    doc = deps.db.collection("payment_intents").document(pi["id"]).get().to_dict()
    assert doc["refund_totals"]["amount"] == refunded
    listed = [d.to_dict() for d in deps.db.collection("refunds").stream()]
    assert sum(d["amount"] for d in listed) == refunded and len(listed) == len(ok)
    assert_ledger_clean(deps)


def test_a_merchant_that_paid_out_cannot_refund_its_share(deps, payments, refunds, make_merchant,
                                                          payer):
    """The settlement account may not go negative: the refund is refused, nothing written."""
    from shared.ledger import service as ledger
    from shared.ledger.model import TransferSpec
    from shared.platform.ids import new_id
    m = make_merchant(("owner",), settings=FEES)
    uid, ph = payer
    fund(deps, uid, 10_000)
    pi = wallet_paid_intent(payments, m, ph, live=True)
    settle_acc, _ = _accounts(m)
    payout = accounts.ensure_system_account(deps.db, "float", "USD", deps.clock.now())
    ledger.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=settle_acc,
                                           credit_account_id=payout, amount=900, asset="USD",
                                           code="payout"))
    r = refunds.post(URL, json={"payment_intent": pi["id"], "amount": 100}, headers=m.headers(live=True))
    assert r.status_code == 400 and err(r)["code"] == "balance_insufficient", r.get_json()
    doc = deps.db.collection("payment_intents").document(pi["id"]).get().to_dict()
    assert not doc.get("refund_totals")
    assert list(deps.db.collection("refunds").stream()) == []
    small = refunds.post(URL, json={"payment_intent": pi["id"], "amount": 40}, headers=m.headers(live=True))
    assert small.status_code == 201, small.get_json()
    assert balance(deps, accounts.user_wallet_id(uid, "USD")).available == 9040
    assert_ledger_clean(deps)
