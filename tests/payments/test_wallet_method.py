"""Paying an intent from a wallet: one unit (hold + capture + settlement + transition), once
under concurrency, nothing moved on refusal; ledger invariants after each scenario."""
from __future__ import annotations

import threading

from shared.ledger import accounts, audit
from shared.payments import settlement
from tests.ledger.conftest import fund
from tests.payments.conftest import err
from tests.payments.test_intents_api import URL, create
from tests.support.identity import auth_headers, create_user_with_token

FEES = {"fee_schedule": {"wallet": {"percent_bps": 250, "fixed": {"USD": 30}}}}


def assert_ledger_clean(deps):
    violations, _ = audit.check(audit.snapshot(deps.db))
    assert violations == [], violations[:3]


def available(deps, account_id):
    got = accounts.read_balances(deps.db, [account_id])
    return got[account_id][1] if account_id in got else None


def test_wallet_payment_settles_net_and_fee(deps, payments, make_merchant, payer):
    m = make_merchant(("owner",), settings=FEES)
    uid, ph = payer
    fund(deps, uid, 10_000)
    pi = create(payments, m.headers(live=True), amount=1000).get_json()
    r = payments.post(f"{URL}/{pi['id']}/pay", json={"client_secret": pi["client_secret"]}, headers=ph)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "succeeded" and body["method"] == "wallet"
    assert body["amount_received"] == 1000 and body["succeeded_at"]
    s = body["settlement"]
    assert (s["amount"], s["fee"], s["net"]) == (1000, 55, 945) and len(s["transfer_ids"]) == 2
    assert [t["status"] for t in body["timeline"]] == ["requires_payment_method", "succeeded"]
    wallet = available(deps, accounts.user_wallet_id(uid, "USD"))
    assert wallet.available == 9000 and wallet.debits_pending == 0
    settle_acc = settlement.settlement_template(m.id, "USD", True).id
    fees_acc = settlement.fees_template("USD", True).id
    assert available(deps, settle_acc).posted == 945 and available(deps, fees_acc).posted == 55
    # test-mode accounts untouched
    assert available(deps, settlement.settlement_template(m.id, "USD", False).id) is None
    # the hold was real: pending transfers created and posted in the same batch
    kinds = sorted(d.get("kind") for d in deps.db.collection("ledger_transfers").stream()
                   if (d.get("metadata") or {}).get("payment_intent") == pi["id"])
    assert kinds == ["pending", "pending", "post_pending", "post_pending"]
    # the merchant sees it; paying again is refused and moves nothing
    got = payments.get(f"{URL}/{pi['id']}", headers=m.headers(live=True)).get_json()
    assert got["status"] == "succeeded"
    again = payments.post(f"{URL}/{pi['id']}/pay", json={"client_secret": pi["client_secret"]},
                          headers=ph)
    assert again.status_code == 409 and err(again)["code"] == "intent_not_payable"
    assert available(deps, accounts.user_wallet_id(uid, "USD")).available == 9000
    # a succeeded intent cannot be canceled
    c = payments.post(f"{URL}/{pi['id']}/cancel", json={}, headers=m.headers(live=True))
    assert c.status_code == 409
    assert_ledger_clean(deps)


def test_refusals_move_nothing(deps, payments, make_merchant, payer):
    m = make_merchant(("owner",))
    uid, ph = payer
    fund(deps, uid, 500)
    pi = create(payments, m.headers(live=True), amount=1000).get_json()
    r = payments.post(f"{URL}/{pi['id']}/pay", json={"client_secret": pi["client_secret"]}, headers=ph)
    assert r.status_code == 400 and err(r)["code"] == "insufficient_funds"
    w = available(deps, accounts.user_wallet_id(uid, "USD"))
    assert w.available == 500 and w.debits_pending == 0
    assert payments.get(f"{URL}/{pi['id']}", headers=m.headers(live=True)).get_json()["status"] == \
        "requires_payment_method"
    # a wrong secret, another intent's secret, a malformed id: 404, nothing revealed
    other = create(payments, m.headers(live=True), amount=100).get_json()
    for pid, secret in ((pi["id"], pi["client_secret"] + "x"), (pi["id"], other["client_secret"]),
                        ("pi_doesnotexist", pi["client_secret"])):
        r = payments.post(f"{URL}/{pid}/pay", json={"client_secret": secret}, headers=ph)
        assert r.status_code == 404, r.get_json()
    # method not offered on the intent
    crypto_only = create(payments, m.headers(live=True), amount=100, payment_method_types=["crypto"]).get_json()
    r = payments.post(f"{URL}/{crypto_only['id']}/pay",
                      json={"client_secret": crypto_only["client_secret"]}, headers=ph)
    assert r.status_code == 400 and err(r)["code"] == "payment_method_not_accepted"
    # a canceled intent
    payments.post(f"{URL}/{other['id']}/cancel", json={}, headers=m.headers(live=True))
    r = payments.post(f"{URL}/{other['id']}/pay", json={"client_secret": other["client_secret"]},
                      headers=ph)
    assert r.status_code == 409 and err(r)["code"] == "intent_not_payable"
    # an API key cannot pay (the payer is a signed-in user) and anonymous is 401
    r = payments.post(f"{URL}/{pi['id']}/pay", json={"client_secret": pi["client_secret"]})
    assert r.status_code == 401
    r = payments.post(f"{URL}/{pi['id']}/pay", json={"client_secret": 5}, headers=ph)
    assert r.status_code == 400
    assert available(deps, accounts.user_wallet_id(uid, "USD")).available == 500
    assert_ledger_clean(deps)


def test_a_test_mode_wallet_payment_never_touches_a_real_wallet(deps, payments, make_merchant, payer):
    """Test mode is play money: the test faucet funds the payment (even for a payer with an
    empty wallet), the merchant's TEST settlement is credited, the payer's real wallet and the
    live accounts see nothing; a refund goes back to the faucet, not into a real wallet."""
    m = make_merchant(("owner",), settings=FEES)
    uid, ph = payer
    fund(deps, uid, 700)
    pi = create(payments, m.headers(), amount=1000).get_json()
    r = payments.post(f"{URL}/{pi['id']}/pay", json={"client_secret": pi["client_secret"]}, headers=ph)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "succeeded"
    assert available(deps, accounts.user_wallet_id(uid, "USD")).available == 700
    faucet = accounts.system_account_id("test_faucet", "USD", "test")
    spent = available(deps, faucet)
    assert (spent.debits_posted, spent.credits_posted, spent.debits_pending) == (1000, 0, 0)
    assert available(deps, settlement.settlement_template(m.id, "USD", False).id).posted == 945
    assert available(deps, settlement.settlement_template(m.id, "USD", True).id) is None
    assert_ledger_clean(deps)


def test_eight_concurrent_payments_capture_once(deps, function_client, make_merchant):
    m = make_merchant(("owner",), settings=FEES)
    setup = function_client("payments")
    pi = create(setup, m.headers(live=True), amount=1000).get_json()
    payers = [create_user_with_token(deps) for _ in range(4)]
    for uid, _ in payers:
        fund(deps, uid, 5000)
    # 8 threads: 4 different payers, and the first payer 4 more times
    who = payers + [payers[0]] * 4
    results: list[tuple[int, str | None]] = []
    barrier = threading.Barrier(len(who))

    def go(token):
        client = function_client("payments")
        barrier.wait()
        r = client.post(f"{URL}/{pi['id']}/pay", json={"client_secret": pi["client_secret"]},
                        headers=auth_headers(token))
        body = r.get_json()
        results.append((r.status_code, body.get("error", {}).get("code") if r.status_code >= 300 else None))

    threads = [threading.Thread(target=go, args=(tok,)) for _, tok in who]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(results, key=lambda x: x[0])
    assert [c for c, _ in codes].count(200) == 1, codes
    assert all(c == 409 and e == "intent_not_payable" for c, e in codes[1:]), codes
    spent = [5000 - available(deps, accounts.user_wallet_id(uid, "USD")).available
             for uid, _ in payers]
    assert sorted(spent) == [0, 0, 0, 1000]
    assert all(available(deps, accounts.user_wallet_id(uid, "USD")).debits_pending == 0
               for uid, _ in payers)
    settle_acc = settlement.settlement_template(m.id, "USD", True).id
    assert available(deps, settle_acc).posted == 945
    doc = deps.db.collection("payment_intents").document(pi["id"]).get().to_dict()
    assert doc["status"] == "succeeded" and len(doc["receipts"]) == 1
    assert_ledger_clean(deps)
