"""Regressions for issue 7's defects 3 (contention was a stored 500), 5 (history ordered by request
start, so running balances did not reconcile) and 6 (holds not reachable over HTTP; the expiry
task answered "already_None")."""
from __future__ import annotations

import concurrent.futures
import csv
import io

import requests

from shared.ledger import accounts, service
from shared.ledger.model import TransferSpec
from shared.platform.ids import new_id
from tests.ledger.conftest import fund, unit
from tests.wallet.conftest import generous_policy


def _send(base, headers, to_username, amount, key):
    return requests.post(f"{base}/v1/wallet/transfers", timeout=60,
                         json={"to": {"username": to_username}, "amount": amount, "asset": "USD"},
                         headers={**headers, "Idempotency-Key": key})


def _username(deps, uid):
    return deps.db.collection("users").document(uid).get().get("username")


def _available(deps, uid):
    got = accounts.read_balances(deps.db, [accounts.user_wallet_id(uid, "USD")])
    return next(iter(got.values()))[1].available if got else 0


def test_ten_concurrent_p2p_from_one_wallet_never_500_and_balances_exact(deps, inprocess_gateway,
                                                                          make_user, policy):
    policy(generous_policy())
    (a, ha) = make_user()
    recipients = [make_user() for _ in range(10)]
    fund(deps, a, 1000)
    keys = [new_id("idem") for _ in recipients]
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        rs = list(pool.map(lambda i: _send(inprocess_gateway, ha, _username(deps, recipients[i][0]),
                                           150, keys[i]), range(10)))
    statuses = [r.status_code for r in rs]
    assert all(s in (201, 422, 503) for s in statuses), [r.text for r in rs]
    for r in rs:
        body = r.json()
        if r.status_code == 422:
            assert body["error"]["code"] == "insufficient_funds"
        if r.status_code == 503:
            assert body["error"]["code"] == "contention" and r.headers.get("Retry-After")
    sent = statuses.count(201)
    assert 1 <= sent <= 6
    assert _available(deps, a) == 1000 - 150 * sent
    assert sum(_available(deps, uid) for uid, _ in recipients) == 150 * sent
    # A 503 is never stored under its key: the same request, retried, gets a real outcome.
    for i, r in enumerate(rs):
        if r.status_code == 503:
            again = _send(inprocess_gateway, ha, _username(deps, recipients[i][0]), 150, keys[i])
            assert again.status_code in (201, 422) and "Idempotent-Replayed" not in again.headers
    total_sent = 1000 - _available(deps, a)
    assert total_sent == sum(_available(deps, uid) for uid, _ in recipients) and total_sent % 150 == 0


def test_four_payers_into_one_recipient_all_succeed(deps, inprocess_gateway, make_user, policy):
    policy(generous_policy())
    (r_uid, _) = make_user()
    payers = [make_user() for _ in range(4)]
    for uid, _ in payers:
        fund(deps, uid, 500)
    name = _username(deps, r_uid)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        rs = list(pool.map(lambda p: _send(inprocess_gateway, p[1], name, 100 + 10 * payers.index(p),
                                           new_id("idem")), payers))
    assert [r.status_code for r in rs] == [201] * 4, [r.text for r in rs]
    assert _available(deps, r_uid) == 100 + 110 + 120 + 130


def test_history_and_statement_reconcile_after_concurrent_credits_five_runs(deps, wallet, make_user,
                                                                           policy):
    policy(generous_policy())
    amounts = [100 * (i + 1) for i in range(9)]            # 100 … 900, as in the report
    payers = [accounts.wallet_template(new_id("usr"), "USD").owner_id for _ in amounts]
    for p in payers:
        fund(deps, p, 10_000)
    for run in range(5):
        uid, headers = make_user()
        target = accounts.wallet_template(uid, "USD")

        def credit(i):
            return service.transfer_now(deps, TransferSpec(
                id=new_id("txf"), debit_account_id=accounts.user_wallet_id(payers[i], "USD"),
                credit_account_id=target.id, amount=amounts[i], asset="USD", code="p2p"),
                templates=[target])
        with concurrent.futures.ThreadPoolExecutor(9) as pool:
            list(pool.map(credit, range(9)))
        hist = wallet.get("/v1/wallet/transactions?asset=USD&limit=4", headers=headers).get_json()
        entries = hist["data"]
        while hist["has_more"]:                                  # pages stitch together
            hist = wallet.get(f"/v1/wallet/transactions?asset=USD&limit=4&starting_after={entries[-1]['id']}",
                              headers=headers).get_json()
            entries += hist["data"]
        assert len(entries) == 9
        chrono = list(reversed(entries))                         # newest first → ledger order
        running = 0
        for e in chrono:
            running += e["amount"]
            assert e["balance_after"]["posted"] == running, (run, [x["balance_after"] for x in chrono])
        assert running == sum(amounts) == _available(deps, uid)
        assert [e["created"] for e in chrono] == sorted(e["created"] for e in chrono)
        text = wallet.get("/v1/wallet/statement.csv?asset=USD", headers=headers).get_data(as_text=True)
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [r["transaction_id"] for r in rows] == [e["id"] for e in chrono]
        prev = 0
        for r in rows:
            cents = int(r["balance_after"].replace(".", ""))
            assert cents == prev + int(r["amount"].replace(".", ""))
            prev = cents
        assert prev == sum(amounts)


def test_holds_over_http_capture_cancel_and_expiry_answers(deps, wallet, make_user, policy,
                                                           function_client, service_headers):
    policy(generous_policy())
    (payer, hp), (payee, hq) = make_user(), make_user()
    fund(deps, payer, 1000)
    to = {"username": _username(deps, payee)}
    r = wallet.post("/v1/wallet/holds", json={"to": to, "amount": 600, "asset": "USD",
                                              "timeout_seconds": 600},
                    headers={**hp, "Idempotency-Key": "hold-1"})
    assert r.status_code == 201, r.get_json()
    hold = r.get_json()
    assert hold["status"] == "pending" and hold["expires_at"] and hold["result"] == "created"
    assert _available(deps, payer) == 400
    # the hold's expiry timer was enqueued through the outbox (named, deterministic)
    assert wallet.get(f"/v1/wallet/holds/{hold['id']}", headers=hq).get_json()["status"] == "pending"
    stranger = make_user()[1]
    assert wallet.get(f"/v1/wallet/holds/{hold['id']}", headers=stranger).status_code == 404
    # only the payee captures; more than held is refused
    assert wallet.post(f"/v1/wallet/holds/{hold['id']}/capture", json={},
                       headers=hp).status_code == 403
    too_much = wallet.post(f"/v1/wallet/holds/{hold['id']}/capture", json={"amount": 601}, headers=hq)
    assert too_much.status_code == 422 and too_much.get_json()["error"]["code"] == "exceeds_pending_transfer_amount"
    cap = wallet.post(f"/v1/wallet/holds/{hold['id']}/capture", json={"amount": 450},
                      headers={**hq, "Idempotency-Key": "cap-1"})
    assert cap.status_code == 200 and cap.get_json()["status"] == "posted", cap.get_json()
    assert cap.get_json()["captured_amount"] == 450
    assert _available(deps, payer) == 550 and _available(deps, payee) == 450
    again = wallet.post(f"/v1/wallet/holds/{hold['id']}/capture", json={"amount": 450},
                        headers={**hq, "Idempotency-Key": "cap-2"})   # a retry without the key record
    assert again.status_code == 200 and again.get_json()["result"] == "exists"
    late = wallet.post(f"/v1/wallet/holds/{hold['id']}/cancel", headers=hp)
    assert late.status_code == 422 and late.get_json()["error"]["code"] == "hold_already_posted"
    # defect 6: the expiry task on a posted hold says so (was "already_None")
    tasks = function_client("ledger_tasks")
    t = tasks.post("/expire-pending", json={"pending_id": hold["id"]}, headers=service_headers)
    assert t.status_code == 200 and t.get_json()["result"] == "already_posted"
    single = service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=accounts.user_wallet_id(payer, "USD"),
                                                     credit_account_id=accounts.user_wallet_id(payee, "USD"),
                                                     amount=1, asset="USD"))
    t = tasks.post("/expire-pending", json={"pending_id": single.id}, headers=service_headers)
    assert t.get_json()["result"] == "already_posted"
    for bad in ("a/b", "__x__", "", "." ):
        t = tasks.post("/expire-pending", json={"pending_id": bad}, headers=service_headers)
        assert t.status_code == 400 and t.get_json()["error"]["param"] == "pending_id", (bad, t.get_json())
    # a second hold canceled by the payer: all of it comes back
    h2 = wallet.post("/v1/wallet/holds", json={"to": to, "amount": 300, "asset": "USD"}, headers=hp).get_json()
    assert _available(deps, payer) == 249
    c = wallet.post(f"/v1/wallet/holds/{h2['id']}/cancel", headers=hp)
    assert c.status_code == 200 and c.get_json()["status"] == "voided"
    assert _available(deps, payer) == 549
    assert unit(deps, service.expire_pending, h2["id"]).result == "already_voided"
    bad = wallet.post("/v1/wallet/holds", json={"to": to, "amount": 5, "asset": "USD",
                                                "timeout_seconds": 0}, headers=hp)
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "timeout_seconds"
