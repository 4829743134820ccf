"""Crypto refunds on a real anvil: signed by the hot wallet (custodial m/44'/60'/1'/0/0),
broadcast once, polled to confirmation, ledger posted; tasks run twice change the receiver's
balance once; a crash between commit and broadcast is healed by the poll with the SAME bytes;
concurrent sends take distinct nonces; a destination that rejects the transfer fails the refund
and releases the amount; an underfunded hot wallet waits."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests
from eth_account import Account

from shared.chain import hd, outgoing, tokens
from shared.chain.networks import load_networks
from shared.ledger import accounts
from shared.payments import intents, settlement
from shared.payments.models import CreateIntent
from shared.platform.auth import Principal
from shared.platform.ids import new_id
from shared.platform.uow import run_unit
from shared.refunds import crypto, hot_wallet
from tests.refunds.conftest import (
    FEES,
    URL,
    assert_ledger_clean,
    balance,
    err,
    events_of,
)

GWEI = 10**9


def rpc(chain, method, *params):
    r = requests.post(chain.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                           "params": list(params)}, timeout=10).json()
    if "error" in r:
        raise RuntimeError(r["error"])
    return r["result"]


def wait_mined(chain, tx_hash, timeout=5.0):
    deadline = time.monotonic() + timeout
    while rpc(chain, "eth_getTransactionReceipt", tx_hash) is None:
        assert time.monotonic() < deadline, "transaction not mined"
        time.sleep(0.02)


def eth_balance(chain, address) -> int:
    return int(rpc(chain, "eth_getBalance", address, "latest"), 16)


def token_balance(chain, asset, address) -> int:
    data = "0x70a08231" + "00" * 12 + address.lower()[2:]
    return int(rpc(chain, "eth_call", {"to": chain.tokens[asset], "data": data}, "latest"), 16)


@pytest.fixture
def shop(deps, chain, make_merchant):
    """A merchant, the test networks on this anvil, and a funded hot wallet."""
    deps.extras["chain.networks"] = load_networks(env={"PAYLOOM_CHAIN_NETWORKS": chain.networks_env})
    seed, _ = hd.provision_custodial_seed(deps, livemode=False)
    hot = seed.tree(account=hot_wallet.HOT_ACCOUNT).address(hot_wallet.HOT_INDEX)
    assert hot_wallet.hot_address(deps, livemode=False) == hot
    m = make_merchant(("owner",), settings=FEES)
    return m, hot


def fund_hot(chain, hot, *, eth=10**19, asset=None, amount=0):
    if eth:
        tx = rpc(chain, "eth_sendTransaction", {"from": chain.accounts[1].address, "to": hot,
                                                "value": hex(eth)})
        wait_mined(chain, tx)
    if asset:
        tx = rpc(chain, "eth_sendTransaction", {
            "from": chain.accounts[0].address, "to": chain.tokens[asset], "gas": hex(100_000),
            "data": "0x" + tokens.encode_transfer_call(hot, amount).hex()})
        wait_mined(chain, tx)


def crypto_paid_intent(deps, merchant_id, amount, asset="ETH"):
    """An intent paid on chain: crypto chosen, then a confirmed receipt recorded (what the
    payments consumer does on ``chain.transfer_confirmed``)."""
    principal = Principal(kind="api_key", id=new_id("key"), tenant_id=merchant_id,
                          scopes=frozenset({"*"}), livemode=False)
    body = CreateIntent(amount=amount, currency=asset, payment_method_types=["crypto"])
    created = run_unit(deps, lambda uow: intents.create(uow, principal, body, None))

    def choose(uow):
        ref, _ = intents.load_for_update(uow, created.id)
        uow.update(ref, {"crypto": {"network": "anvil", "chain_id": 31337, "asset": asset,
                                    "address": Account.create().address}})
    run_unit(deps, choose)

    def paid(uow):
        ref, doc = intents.load_for_update(uow, created.id)
        return intents.record_received(uow, ref, doc, amount, method="crypto", final=True,
                                       reference=f"anvil:0x{uuid.uuid4().hex}:0")
    doc = run_unit(deps, paid)
    assert doc["status"] == "succeeded"
    return doc


def poll_until_done(deps, chain, refund_id, tries=20):
    for _ in range(tries):
        outcome = crypto.poll(deps, refund_id)
        if outcome in ("succeeded", "failed", "done"):
            return outcome
        time.sleep(0.05)
    raise AssertionError("refund did not complete")


def refund_doc(deps, rid):
    return deps.db.collection("refunds").document(rid).get().to_dict()


def test_eth_refund_partial_then_full_tasks_twice_pay_once(deps, chain, shop, refunds,
                                                           function_client, service_headers):
    m, hot = shop
    fund_hot(chain, hot)
    pi = crypto_paid_intent(deps, m.id, GWEI)                 # 1 ETH, fee 1%
    receiver = Account.create().address
    settle_acc = settlement.settlement_template(m.id, "ETH", False).id
    external = accounts.system_account_id("external", "ETH", "test")
    assert balance(deps, settle_acc).posted == 990_000_000

    # no address, a bad one: 400, nothing reserved
    r = refunds.post(URL, json={"payment_intent": pi["id"]}, headers=m.headers())
    assert r.status_code == 400 and err(r)["code"] == "address_required"
    r = refunds.post(URL, json={"payment_intent": pi["id"], "address": receiver.lower()[:-1] + "x"},
                     headers=m.headers())
    assert r.status_code == 400
    r = refunds.post(URL, json={"payment_intent": pi["id"], "address": "0x" + "00" * 20},
                     headers=m.headers())
    assert r.status_code == 400 and err(r)["code"] == "invalid_address"

    r = refunds.post(URL, json={"payment_intent": pi["id"], "amount": 400_000_000,
                                "address": receiver.lower()}, headers=m.headers())
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    assert first["status"] == "pending" and first["method"] == "crypto"
    assert first["destination"] == {"network": "anvil", "chain_id": 31337, "asset": "ETH",
                                    "token": None, "address": receiver,
                                    "amount": str(4 * 10**17)}
    assert (first["ledger"]["merchant_share"], first["ledger"]["fee_share"]) == (396_000_000, 4_000_000)
    held = balance(deps, settle_acc)
    assert held.debits_pending == 396_000_000 and held.available == 990_000_000 - 396_000_000

    # the send task twice: signed once, broadcast, then the same bytes again
    tasks = function_client("refunds_tasks")
    outs = [tasks.post("/crypto/send", json={"refund_id": first["id"]}, headers=service_headers)
            for _ in range(2)]
    assert [o.status_code for o in outs] == [200, 200], [o.get_json() for o in outs]
    assert [o.get_json()["outcome"] for o in outs] == ["sent", "rebroadcast"]
    doc = refund_doc(deps, first["id"])
    assert doc["chain"]["nonce"] == 0 and doc["chain"]["sender"] == hot
    wait_mined(chain, doc["chain"]["hash"])
    assert poll_until_done(deps, chain, first["id"]) == "succeeded"
    assert crypto.poll(deps, first["id"]) == "done"
    r2 = tasks.post("/crypto/poll", json={"refund_id": first["id"]}, headers=service_headers)
    assert r2.get_json()["outcome"] == "done"
    assert eth_balance(chain, receiver) == 4 * 10**17                  # paid exactly once

    got = refunds.get(f"{URL}/{first['id']}", headers=m.headers()).get_json()
    assert got["status"] == "succeeded" and got["transaction"]["hash"] == doc["chain"]["hash"]
    assert got["transaction"]["confirmations"] >= 1 and got["transaction"]["gas_used"] == 21_000
    after = balance(deps, settle_acc)
    assert after.debits_pending == 0 and after.posted == 990_000_000 - 396_000_000
    assert events_of(deps, first["id"]) == ["refund.created", "refund.succeeded"]
    ext_before = balance(deps, external)

    # the rest: the next nonce
    r = refunds.post(URL, json={"payment_intent": pi["id"], "address": receiver},
                     headers=m.headers())
    assert r.status_code == 201 and r.get_json()["amount"] == 600_000_000
    second = r.get_json()
    client = crypto.rpc_for(deps, load_networks(env={"PAYLOOM_CHAIN_NETWORKS": chain.networks_env}).get("anvil"))
    before = dict(client.counters)
    assert crypto.send(deps, second["id"]) == "sent"
    sent = {k: v - before[k] for k, v in client.counters.items()}
    # measured: one batch (nonce, head block, tip, balance) and the gas estimate through the
    # client, plus the broadcast (sent directly: see outgoing.broadcast)
    assert sent == {"http_calls": 2, "rpc_requests": 5}, sent
    doc2 = refund_doc(deps, second["id"])
    assert doc2["chain"]["nonce"] == 1
    wait_mined(chain, doc2["chain"]["hash"])
    before = dict(client.counters)
    assert crypto.poll(deps, second["id"]) == "succeeded"
    polled = {k: v - before[k] for k, v in client.counters.items()}
    assert polled == {"http_calls": 1, "rpc_requests": 2}, polled     # receipt + head, batched
    assert eth_balance(chain, receiver) == 10**18
    nonce = deps.db.collection("chain_nonces").document(f"anvil:{hot.lower()}").get().to_dict()
    assert nonce["next"] == 2
    final = balance(deps, settle_acc)
    assert final.posted == 0 and final.debits_pending == 0
    assert balance(deps, settlement.fees_template("ETH", False).id).posted == 0
    assert balance(deps, external).debits_posted == ext_before.debits_posted
    assert_ledger_clean(deps)


def test_crash_between_commit_and_broadcast_is_healed_with_the_same_bytes(
        deps, chain, shop, refunds, monkeypatch):
    m, hot = shop
    fund_hot(chain, hot)
    pi = crypto_paid_intent(deps, m.id, GWEI)
    receiver = Account.create().address
    rid = refunds.post(URL, json={"payment_intent": pi["id"], "amount": 100_000_000,
                                  "address": receiver}, headers=m.headers()).get_json()["id"]
    real = outgoing.broadcast

    def crash(*_a, **_k):
        raise RuntimeError("process died after the commit")
    monkeypatch.setattr(outgoing, "broadcast", crash)
    with pytest.raises(RuntimeError):
        crypto.send(deps, rid)
    monkeypatch.setattr(outgoing, "broadcast", real)
    stored = refund_doc(deps, rid)["chain"]
    assert stored["raw"] and rpc(chain, "eth_getTransactionReceipt", stored["hash"]) is None
    assert eth_balance(chain, receiver) == 0
    # the poll finds no receipt, rebroadcasts the stored bytes, and later confirms
    assert crypto.poll(deps, rid) == "pending"
    wait_mined(chain, stored["hash"])
    assert poll_until_done(deps, chain, rid) == "succeeded"
    assert refund_doc(deps, rid)["chain"]["hash"] == stored["hash"]
    assert crypto.send(deps, rid) == "done"
    assert eth_balance(chain, receiver) == 10**17
    assert_ledger_clean(deps)


def test_token_refunds_concurrent_sends_take_distinct_nonces(deps, chain, shop, refunds):
    m, hot = shop
    fund_hot(chain, hot, asset="USDC", amount=5_000_000)
    pi = crypto_paid_intent(deps, m.id, 5_000_000, asset="USDC")
    receivers = [Account.create().address for _ in range(2)]
    rids = []
    for to in receivers:
        r = refunds.post(URL, json={"payment_intent": pi["id"], "amount": 2_000_000, "address": to},
                         headers=m.headers())
        assert r.status_code == 201, r.get_json()
        assert r.get_json()["destination"]["token"] == chain.tokens["USDC"]
        rids.append(r.get_json()["id"])
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def go(rid):
        barrier.wait()
        outcomes.append(crypto.send(deps, rid))
    threads = [threading.Thread(target=go, args=(rid,)) for rid in rids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["sent", "sent"]
    docs = [refund_doc(deps, rid) for rid in rids]
    assert sorted(d["chain"]["nonce"] for d in docs) == [0, 1]
    for rid, d in zip(rids, docs):
        wait_mined(chain, d["chain"]["hash"])
        assert poll_until_done(deps, chain, rid) == "succeeded"
    assert [token_balance(chain, "USDC", to) for to in receivers] == [2_000_000, 2_000_000]
    assert token_balance(chain, "USDC", hot) == 1_000_000
    # a third refund the hot wallet cannot cover waits (nothing sent), then succeeds once funded
    r = refunds.post(URL, json={"payment_intent": pi["id"], "address": receivers[0]},
                     headers=m.headers())
    third = r.get_json()["id"]
    assert r.get_json()["amount"] == 1_000_000
    fund_hot(chain, hot, eth=0)                                        # no-op: still 1 USDC
    rpc(chain, "anvil_setBalance", hot, hex(0))                         # and no gas at all
    assert crypto.send(deps, third) == "underfunded"
    doc = refund_doc(deps, third)
    assert doc["status"] == "pending" and not doc["chain"].get("raw")
    assert "underfunded" in doc["chain"]["last_error"]
    fund_hot(chain, hot, eth=10**18)
    assert crypto.send(deps, third) == "sent"
    wait_mined(chain, refund_doc(deps, third)["chain"]["hash"])
    assert poll_until_done(deps, chain, third) == "succeeded"
    assert token_balance(chain, "USDC", receivers[0]) == 3_000_000
    assert_ledger_clean(deps)


def test_a_destination_that_rejects_the_transfer_fails_and_releases(deps, chain, shop, refunds):
    """ETH to a contract without a payable fallback (the USDC contract) reverts: the refund
    fails before anything is signed, its holds are voided, the amount is refundable again."""
    m, hot = shop
    fund_hot(chain, hot)
    pi = crypto_paid_intent(deps, m.id, GWEI)
    settle_acc = settlement.settlement_template(m.id, "ETH", False).id
    r = refunds.post(URL, json={"payment_intent": pi["id"], "address": chain.tokens["USDC"]},
                     headers=m.headers())
    assert r.status_code == 201, r.get_json()
    rid = r.get_json()["id"]
    assert crypto.send(deps, rid) == "failed"
    doc = refund_doc(deps, rid)
    assert doc["status"] == "failed" and doc["failure_reason"] == "destination_rejected"
    assert not (doc.get("chain") or {}).get("raw")
    bal = balance(deps, settle_acc)
    assert bal.debits_pending == 0 and bal.posted == 990_000_000
    intent = deps.db.collection("payment_intents").document(pi["id"]).get().to_dict()
    assert intent["refund_totals"] == {"amount": 0, "ledger": 0, "fee": 0, "net": 0}
    assert events_of(deps, rid) == ["refund.created", "refund.failed"]
    again = refunds.post(URL, json={"payment_intent": pi["id"], "address": Account.create().address},
                         headers=m.headers())
    assert again.status_code == 201 and again.get_json()["amount"] == GWEI
    assert_ledger_clean(deps)


def test_reverted_and_replaced_transactions_fail_and_release(deps, chain, shop, refunds,
                                                             monkeypatch):
    """A signed before B but broadcast after it (a crash between commit and broadcast): the node
    mines A then B, and B, no longer covered, reverts → failed, released. Then a refund whose
    nonce another transaction from the hot wallet took is failed as ``nonce_replaced``."""
    m, hot = shop
    fund_hot(chain, hot, asset="USDC", amount=3_000_000)
    pi = crypto_paid_intent(deps, m.id, 5_000_000, asset="USDC")
    settle_acc = settlement.settlement_template(m.id, "USDC", False).id
    to_a, to_b, to_c = (Account.create().address for _ in range(3))

    def refund(to, amount):
        r = refunds.post(URL, json={"payment_intent": pi["id"], "amount": amount, "address": to},
                         headers=m.headers())
        assert r.status_code == 201, r.get_json()
        return r.get_json()["id"]

    def crash(*_a, **_k):
        raise RuntimeError("process died after the commit")

    real = outgoing.broadcast
    ra, rb = refund(to_a, 2_000_000), refund(to_b, 2_000_000)
    monkeypatch.setattr(outgoing, "broadcast", crash)
    with pytest.raises(RuntimeError):
        crypto.send(deps, ra)                                   # nonce 0, signed, not sent
    monkeypatch.setattr(outgoing, "broadcast", real)
    assert crypto.send(deps, rb) == "sent"                      # nonce 1: waits behind the gap
    a, b = refund_doc(deps, ra)["chain"], refund_doc(deps, rb)["chain"]
    assert (a["nonce"], b["nonce"]) == (0, 1)
    assert crypto.poll(deps, ra) == "pending"                   # rebroadcast: A, then B, mine
    wait_mined(chain, a["hash"])
    wait_mined(chain, b["hash"])
    assert poll_until_done(deps, chain, ra) == "succeeded"
    assert poll_until_done(deps, chain, rb) == "failed"
    failed = refund_doc(deps, rb)
    assert failed["failure_reason"] == "transaction_reverted"
    assert failed["chain"]["block_number"] and failed["chain"]["gas_used"]
    assert token_balance(chain, "USDC", to_a) == 2_000_000
    assert token_balance(chain, "USDC", to_b) == 0
    intent = deps.db.collection("payment_intents").document(pi["id"]).get().to_dict()
    assert intent["refund_totals"]["amount"] == 2_000_000
    assert balance(deps, settle_acc).debits_pending == 0

    # the nonce of a signed refund taken by another transaction from the hot wallet
    rc = refund(to_c, 1_000_000)
    monkeypatch.setattr(outgoing, "broadcast", crash)
    with pytest.raises(RuntimeError):
        crypto.send(deps, rc)
    monkeypatch.setattr(outgoing, "broadcast", real)
    assert refund_doc(deps, rc)["chain"]["nonce"] == 2
    rpc(chain, "anvil_impersonateAccount", hot)
    try:
        other = rpc(chain, "eth_sendTransaction", {"from": hot, "to": hot, "value": "0x0",
                                                   "nonce": hex(2)})
    finally:
        rpc(chain, "anvil_stopImpersonatingAccount", hot)
    wait_mined(chain, other)
    assert crypto.poll(deps, rc) == "failed"
    assert refund_doc(deps, rc)["failure_reason"] == "nonce_replaced"
    assert token_balance(chain, "USDC", to_c) == 0
    assert balance(deps, settle_acc).debits_pending == 0
    assert sorted(events_of(deps, rc)) == ["refund.created", "refund.failed"]
    assert_ledger_clean(deps)
