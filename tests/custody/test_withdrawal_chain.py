"""Withdrawals against the chain (real anvil): destinations checked before anything is held,
the hot wallet's balance checked at the proposal and again before signing, 8 concurrent
approvals execute once, a crash between sign and broadcast is healed with the SAME bytes, a
reverted transfer voids the hold, and a refund signed at the same moment never shares the hot
wallet's nonce."""
from __future__ import annotations

import json
import threading

import pytest
from eth_account import Account

from shared.chain import outgoing
from shared.chain.networks import load_networks
from shared.custody import audit, withdrawal_chain
from shared.custody import withdrawals as wd
from shared.refunds import crypto
from tests.custody.conftest import (
    FEES_ETH,
    FEES_USDC,
    GWEI,
    WITHDRAWALS,
    assert_ledger_clean,
    balance,
    configure,
    err,
    eth_balance,
    finish,
    fund_hot,
    fund_revenue,
    make_staff,
    rpc,
    token_balance,
    withdrawal_doc,
)
from tests.payments.conftest import make_merchant  # noqa: F401  (fixture)
from tests.refunds.conftest import FEES, events_of
from tests.refunds.test_crypto_refunds import crypto_paid_intent, poll_until_done


def crash(*_a, **_k):
    raise RuntimeError("process died after the commit")


def test_destinations_are_checked_before_anything_is_held(deps, chain, treasury, custody_api):
    hot = treasury
    staff = make_staff(deps, 1)
    configure(deps, staff.ids, threshold=1)
    fund_hot(chain, hot, asset="USDC", amount=10_000_000)
    fund_revenue(deps, "ETH", GWEI)
    fund_revenue(deps, "USDC", 10_000_000)
    live = {"name": "livenet", "chain_id": 1, "livemode": True, "rpc_urls": ["http://127.0.0.1:9"]}
    deps.extras["chain.networks"] = load_networks(env={"PAYLOOM_CHAIN_NETWORKS": json.dumps(
        json.loads(chain.networks_env) + [live])})
    good = Account.create().address
    mixed_bad = good[:2] + good[2:].swapcase() if good[2:] != good[2:].swapcase() else None
    body = {"network": "anvil", "asset": "ETH", "amount": GWEI // 10, "destination": good}
    cases = [
        ({"destination": "0x" + "00" * 20}, 400, "invalid_address"),
        ({"destination": mixed_bad}, 400, "invalid_address"),                 # EIP-55 typo
        ({"destination": "0x1234"}, 400, "parameter_invalid"),
        ({"destination": hot}, 400, "invalid_address"),                       # to itself
        ({"asset": "USDC", "destination": chain.tokens["USDC"]}, 400, "invalid_address"),
        # ether to a contract without a payable fallback: the transfer would revert
        ({"destination": chain.tokens["USDC"]}, 400, "destination_rejected"),
        ({"network": "livenet"}, 400, "network_mode_mismatch"),
        ({"network": "nowhere"}, 400, "network_unknown"),
        ({"asset": "USD"}, 400, "asset_unsupported_on_network"),
        ({"asset": "DOGE"}, 400, "asset_unknown"),
        ({"amount": 0}, 400, "parameter_invalid"),
        ({"amount": 1.5}, 400, "parameter_invalid"),
        ({"memo": "x" * 501}, 400, "parameter_invalid"),
        ({"extra": 1}, 400, "parameter_unknown"),
    ]
    for change, status, code in cases:
        if change.get("destination", "") is None:
            continue
        r = custody_api.post(WITHDRAWALS, json={**body, **change}, headers=staff.headers(0))
        assert (r.status_code, err(r)["code"]) == (status, code), (change, r.get_json())
    assert list(deps.db.collection(wd.COLLECTION).stream()) == []
    assert balance(deps, FEES_ETH).debits_pending == 0
    assert audit.verify(deps.db, False)["records"] == 0
    # all lower case is accepted and checksummed; a token goes to the token's transfer
    r = custody_api.post(WITHDRAWALS, json={**body, "asset": "USDC", "amount": 1_000_000,
                                            "destination": good.lower()}, headers=staff.headers(0))
    assert r.status_code == 201 and r.get_json()["destination"] == good, r.get_json()


def test_the_hot_wallet_and_the_revenue_must_cover_it(deps, chain, treasury, custody_api):
    hot = treasury
    staff = make_staff(deps, 2)
    configure(deps, staff.ids, threshold=2)
    fund_hot(chain, hot, eth=10**17)                          # 0.1 ETH on chain
    fund_revenue(deps, "ETH", GWEI)                           # 1 ETH of revenue in the ledger
    body = {"network": "anvil", "asset": "ETH", "amount": GWEI // 5,
            "destination": Account.create().address}
    r = custody_api.post(WITHDRAWALS, json=body, headers=staff.headers(0))
    assert r.status_code == 409 and err(r)["code"] == "insufficient_hot_balance"
    fund_hot(chain, hot, eth=10**18)
    r = custody_api.post(WITHDRAWALS, json={**body, "amount": 2 * GWEI}, headers=staff.headers(0))
    assert r.status_code == 409 and err(r)["code"] == "insufficient_hot_balance"
    fund_hot(chain, hot, eth=2 * 10**18)                       # 3.1 ETH now; revenue is 1 ETH
    r = custody_api.post(WITHDRAWALS, json={**body, "amount": 2 * GWEI}, headers=staff.headers(0))
    assert r.status_code == 409 and err(r)["code"] == "insufficient_treasury_balance"
    assert list(deps.db.collection(wd.COLLECTION).stream()) == []
    # approved, then the hot wallet is drained before the send: failed, nothing signed, released
    w = custody_api.post(WITHDRAWALS, json={**body, "amount": GWEI}, headers=staff.headers(0)).get_json()
    assert w["status"] == "pending_approval"
    r = custody_api.post(f"{WITHDRAWALS}/{w['id']}/approve", headers=staff.headers(1))
    assert r.get_json()["status"] == "approved"
    rpc(chain, "anvil_setBalance", hot, hex(10**16))
    assert withdrawal_chain.send(deps, w["id"]) == "failed"
    d = withdrawal_doc(deps, w["id"])
    assert (d["status"], d["failure_reason"]) == ("failed", "insufficient_hot_balance")
    assert not d["chain"].get("raw") and "short" in d["chain"]["last_error"]
    assert balance(deps, FEES_ETH).debits_pending == 0 and balance(deps, FEES_ETH).posted == GWEI
    assert events_of(deps, w["id"]) == sorted(
        f"custody.withdrawal.{e}" for e in ("created", "approved", "failed"))
    assert audit.verify(deps.db, False)["ok"]
    assert_ledger_clean(deps)


def test_eight_concurrent_approvals_execute_once(deps, chain, treasury, custody_api, monkeypatch):
    hot = treasury
    staff = make_staff(deps, 9)
    configure(deps, staff.ids, threshold=5)
    fund_hot(chain, hot)
    fund_revenue(deps, "ETH", 5 * GWEI)
    to = Account.create().address
    w = custody_api.post(WITHDRAWALS, json={"network": "anvil", "asset": "ETH", "amount": GWEI,
                                            "destination": to}, headers=staff.headers(0)).get_json()
    assert w["status"] == "pending_approval" and w["required_approvals"] == 5
    app = custody_api.application
    barrier = threading.Barrier(8)
    answers: dict[int, tuple[int, dict]] = {}

    def approve(i):
        client = app.test_client()
        barrier.wait()
        for _ in range(10):                   # a client honours 503 + Retry-After
            r = client.post(f"{WITHDRAWALS}/{w['id']}/approve", headers=staff.headers(i))
            if r.status_code != 503:
                break
        answers[i] = (r.status_code, r.get_json())

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(s for s, _ in answers.values())
    assert codes == [200] * 4 + [409] * 4, answers
    assert all(b["error"]["code"] == "withdrawal_not_pending" for s, b in answers.values() if s == 409)
    d = withdrawal_doc(deps, w["id"])
    assert d["status"] == "approved" and len(d["approvals"]) == 5
    sends = [t for o in deps.db.collection("outbox").stream() for t in o.to_dict().get("tasks") or []
             if t["path"] == wd.SEND_PATH and t["body"]["withdrawal_id"] == w["id"]]
    assert len(sends) == 1                                      # one commit reached M
    # the send task delivered four times at once: one signature, one transaction
    raws = []
    real = outgoing.broadcast
    monkeypatch.setattr(outgoing, "broadcast", lambda rpc_, raw: raws.append(raw) or real(rpc_, raw))
    barrier4 = threading.Barrier(4)
    outcomes = []

    def send():
        barrier4.wait()
        outcomes.append(withdrawal_chain.send(deps, w["id"]))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(outcomes) <= {"sent", "rebroadcast"} and len(outcomes) == 4, outcomes
    assert len(set(raws)) == 1
    assert finish(deps, chain, w["id"]) == "succeeded"
    assert eth_balance(chain, to) == 10**18
    assert int(rpc(chain, "eth_getTransactionCount", hot, "latest"), 16) == 1
    assert audit.verify(deps.db, False)["ok"]
    assert_ledger_clean(deps)


def test_a_crash_between_sign_and_broadcast_is_healed_with_the_same_bytes(
        deps, chain, treasury, custody_api, monkeypatch):
    hot = treasury
    staff = make_staff(deps, 1)
    configure(deps, staff.ids, threshold=1)
    fund_hot(chain, hot)
    fund_revenue(deps, "ETH", GWEI)
    to = Account.create().address
    w = custody_api.post(WITHDRAWALS, json={"network": "anvil", "asset": "ETH", "amount": GWEI // 10,
                                            "destination": to}, headers=staff.headers(0)).get_json()
    monkeypatch.setattr(outgoing, "broadcast", crash)
    with pytest.raises(RuntimeError):
        withdrawal_chain.send(deps, w["id"])
    monkeypatch.undo()
    stored = withdrawal_doc(deps, w["id"])["chain"]
    assert withdrawal_doc(deps, w["id"])["status"] == "executing"
    assert rpc(chain, "eth_getTransactionReceipt", stored["hash"]) is None and eth_balance(chain, to) == 0
    assert withdrawal_chain.poll(deps, w["id"]) == "pending"      # rebroadcasts the stored bytes
    assert finish(deps, chain, w["id"]) == "succeeded"
    assert withdrawal_doc(deps, w["id"])["chain"]["hash"] == stored["hash"]
    assert withdrawal_chain.send(deps, w["id"]) == "done"
    assert eth_balance(chain, to) == 10**17
    assert_ledger_clean(deps)


def test_a_reverted_transfer_fails_and_releases(deps, chain, treasury, custody_api, monkeypatch):
    """A signed before B but broadcast after it: both mine, B is no longer covered and reverts
    → failed, its hold voided; A succeeded."""
    hot = treasury
    staff = make_staff(deps, 1)
    configure(deps, staff.ids, threshold=1)
    fund_hot(chain, hot, asset="USDC", amount=3_000_000)
    fund_revenue(deps, "USDC", 10_000_000)
    to_a, to_b = Account.create().address, Account.create().address
    ids = [custody_api.post(WITHDRAWALS, json={"network": "anvil", "asset": "USDC",
                                               "amount": 2_000_000, "destination": to},
                            headers=staff.headers(0)).get_json()["id"] for to in (to_a, to_b)]
    monkeypatch.setattr(outgoing, "broadcast", crash)
    with pytest.raises(RuntimeError):
        withdrawal_chain.send(deps, ids[0])                    # nonce 0: signed, not sent
    monkeypatch.undo()
    assert withdrawal_chain.send(deps, ids[1]) == "sent"       # nonce 1: waits behind the gap
    assert [withdrawal_doc(deps, i)["chain"]["nonce"] for i in ids] == [0, 1]
    assert withdrawal_chain.poll(deps, ids[0]) == "pending"
    assert finish(deps, chain, ids[0]) == "succeeded"
    assert finish(deps, chain, ids[1]) == "failed"
    d = withdrawal_doc(deps, ids[1])
    assert d["failure_reason"] == "transaction_reverted" and d["chain"]["gas_used"]
    assert token_balance(chain, "USDC", to_a) == 2_000_000 and token_balance(chain, "USDC", to_b) == 0
    fees = balance(deps, FEES_USDC)
    assert fees.debits_pending == 0 and fees.posted == 8_000_000
    acts = [r.get("action") for r in audit.head_ref(deps.db, False).collection(audit.RECORDS).stream()
            if r.get("subject") == ids[1]]
    assert sorted(acts) == ["withdrawal.executed", "withdrawal.failed", "withdrawal.proposed"]
    assert_ledger_clean(deps)


def test_a_refund_and_a_withdrawal_signed_at_once_never_share_a_nonce(
        deps, chain, treasury, custody_api, make_merchant, function_client):  # noqa: F811
    hot = treasury
    staff = make_staff(deps, 1)
    configure(deps, staff.ids, threshold=1)
    fund_hot(chain, hot)
    fund_revenue(deps, "ETH", GWEI)
    shop = make_merchant(("owner",), settings=FEES)
    pi = crypto_paid_intent(deps, shop.id, GWEI)
    payer, receiver = Account.create().address, Account.create().address
    r = function_client("refunds").post("/v1/refunds", json={
        "payment_intent": pi["id"], "amount": GWEI // 2, "address": payer}, headers=shop.headers())
    assert r.status_code == 201, r.get_json()
    refund_id = r.get_json()["id"]
    w = custody_api.post(WITHDRAWALS, json={"network": "anvil", "asset": "ETH", "amount": GWEI // 4,
                                            "destination": receiver}, headers=staff.headers(0)).get_json()
    assert w["status"] == "approved"
    barrier = threading.Barrier(2)
    outcomes = {}

    def go(name, fn, oid):
        barrier.wait()
        outcomes[name] = fn(deps, oid)

    threads = [threading.Thread(target=go, args=("refund", crypto.send, refund_id)),
               threading.Thread(target=go, args=("withdrawal", withdrawal_chain.send, w["id"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == {"refund": "sent", "withdrawal": "sent"}
    refund_nonce = deps.db.collection("refunds").document(refund_id).get().to_dict()["chain"]["nonce"]
    assert sorted([refund_nonce, withdrawal_doc(deps, w["id"])["chain"]["nonce"]]) == [0, 1]
    nonce_doc = deps.db.collection("chain_nonces").document(f"anvil:{hot.lower()}").get().to_dict()
    assert nonce_doc["next"] == 2
    assert finish(deps, chain, w["id"]) == "succeeded"
    assert poll_until_done(deps, chain, refund_id) == "succeeded"
    assert eth_balance(chain, payer) == GWEI // 2 * GWEI
    assert eth_balance(chain, receiver) == GWEI // 4 * GWEI
    assert_ledger_clean(deps)
