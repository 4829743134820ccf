"""Crypto refunds through ``shared.chain.outgoing`` on a real anvil: a refund stuck in the pool
is replaced after the bump delay (same nonce, both fees +12.5%), the replacement pays the payer
once, and the gas of the mined transaction is booked ``network_fees`` → ``external`` (gwei,
the sub-gwei rest kept on the refund) exactly once however many polls race; a reverted refund
pays (and books) gas too, a replaced one nothing."""
from __future__ import annotations

import contextlib
import datetime as dt
import threading

import pytest
from eth_account import Account

from shared.chain import outgoing
from shared.ledger import accounts
from shared.refunds import crypto
from tests.refunds.conftest import URL, assert_ledger_clean, balance, events_of
from tests.refunds.test_crypto_refunds import (  # noqa: F401  (the shop fixture)
    GWEI,
    crypto_paid_intent,
    eth_balance,
    fund_hot,
    poll_until_done,
    refund_doc,
    rpc,
    shop,
    token_balance,
    wait_mined,
)

NETWORK_FEES = accounts.system_account_id("network_fees", "ETH", "test")


@contextlib.contextmanager
def mining_paused(chain):
    """Blocks only when the test mines one (``evm_mine``): transactions wait in the pool."""
    rpc(chain, "evm_setAutomine", False)
    try:
        yield
    finally:
        rpc(chain, "evm_setAutomine", True)


def fees_booked(deps) -> int:
    got = balance(deps, NETWORK_FEES)
    return got.debits_posted if got is not None else 0


def test_a_stuck_refund_is_replaced_and_its_gas_booked_once(deps, chain, shop, refunds):  # noqa: F811
    m, hot = shop
    fund_hot(chain, hot)
    pi = crypto_paid_intent(deps, m.id, GWEI)
    receiver = Account.create().address
    r = refunds.post(URL, json={"payment_intent": pi["id"], "amount": GWEI // 10,
                                "address": receiver}, headers=m.headers())
    assert r.status_code == 201, r.get_json()
    rid = r.get_json()["id"]
    before = fees_booked(deps)
    with mining_paused(chain):
        assert crypto.send(deps, rid) == "sent"
        first = refund_doc(deps, rid)["chain"]
        assert rpc(chain, "eth_getTransactionByHash", first["hash"])["blockNumber"] is None
        assert crypto.poll(deps, rid) == "pending"               # not overdue: the same bytes
        assert len(refund_doc(deps, rid)["chain"]["attempts"]) == 1
        deps.extras["chain.bump_policy"] = outgoing.BumpPolicy(after=dt.timedelta(0))
        assert crypto.poll(deps, rid) == "bumped"
        deps.extras["chain.bump_policy"] = outgoing.BumpPolicy()
        chain_doc = refund_doc(deps, rid)["chain"]
        old, new = chain_doc["attempts"]
        assert chain_doc["bumps"] == 1 and chain_doc["hash"] == new["hash"] != old["hash"]
        assert int(new["max_fee_per_gas"]) * 8 >= int(old["max_fee_per_gas"]) * 9
        assert int(new["max_priority_fee_per_gas"]) * 8 >= int(old["max_priority_fee_per_gas"]) * 9
        assert new["value"] == old["value"] == str(10**17)       # the hot wallet pays the bump
        pooled = rpc(chain, "eth_getTransactionByHash", new["hash"])
        assert int(pooled["nonce"], 16) == chain_doc["nonce"] == first["nonce"]
        rpc(chain, "evm_mine")
    wait_mined(chain, new["hash"])
    assert rpc(chain, "eth_getTransactionReceipt", old["hash"]) is None

    # the closing poll delivered twice at once: one completes and books, the other finds it done
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def go():
        start.wait()
        outcomes.append(crypto.poll(deps, rid))
    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["done", "succeeded"], outcomes
    doc = refund_doc(deps, rid)
    assert doc["status"] == "succeeded" and doc["chain"]["hash"] == new["hash"]
    assert eth_balance(chain, receiver) == 10**17                # paid once
    fee = int(doc["chain"]["fee"])
    receipt = rpc(chain, "eth_getTransactionReceipt", new["hash"])
    assert fee == int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    assert fees_booked(deps) - before == fee // GWEI
    assert int(doc["chain"]["fee_unbooked_wei"]) == fee % GWEI
    assert doc["chain"]["fee_transfer"] == outgoing.fee_transfer_id("refunds", rid)
    assert crypto.poll(deps, rid) == "done" and fees_booked(deps) - before == fee // GWEI
    assert events_of(deps, rid) == ["refund.created", "refund.succeeded"]
    assert_ledger_clean(deps)


def test_a_reverted_refund_books_its_gas_and_a_replaced_one_none(deps, chain, shop, refunds,  # noqa: F811
                                                                   monkeypatch):
    """A signed before B but broadcast after it: both mine, B (no longer covered) reverts and
    fails, and its gas is booked all the same; a refund whose nonce another transaction took
    paid nothing and books nothing."""
    m, hot = shop
    fund_hot(chain, hot, asset="USDC", amount=3_000_000)
    pi = crypto_paid_intent(deps, m.id, 5_000_000, asset="USDC")

    def refund(amount):
        r = refunds.post(URL, json={"payment_intent": pi["id"], "amount": amount,
                                    "address": Account.create().address}, headers=m.headers())
        assert r.status_code == 201, r.get_json()
        return r.get_json()["id"]

    def crash(*_a, **_k):
        raise RuntimeError("process died after the commit")

    before = fees_booked(deps)
    ra, rb = refund(2_000_000), refund(2_000_000)
    monkeypatch.setattr(outgoing, "broadcast", crash)
    with pytest.raises(RuntimeError):
        crypto.send(deps, ra)                                   # nonce 0: signed, not sent
    monkeypatch.undo()
    assert crypto.send(deps, rb) == "sent"                      # nonce 1: waits behind the gap
    assert crypto.poll(deps, ra) == "pending"                   # A again: both mine
    assert [poll_until_done(deps, chain, i) for i in (ra, rb)] == ["succeeded", "failed"]
    assert refund_doc(deps, rb)["failure_reason"] == "transaction_reverted"
    fees = [int(refund_doc(deps, i)["chain"]["fee"]) for i in (ra, rb)]
    assert all(f > 0 for f in fees)
    assert fees_booked(deps) - before == sum(f // GWEI for f in fees)
    assert token_balance(chain, "USDC", hot) == 1_000_000

    rc = refund(1_000_000)
    monkeypatch.setattr(outgoing, "broadcast", crash)
    with pytest.raises(RuntimeError):
        crypto.send(deps, rc)
    monkeypatch.undo()
    nonce = refund_doc(deps, rc)["chain"]["nonce"]
    rpc(chain, "anvil_impersonateAccount", hot)
    try:
        other = rpc(chain, "eth_sendTransaction", {"from": hot, "to": hot, "value": "0x0",
                                                   "nonce": hex(nonce)})
    finally:
        rpc(chain, "anvil_stopImpersonatingAccount", hot)
    wait_mined(chain, other)
    booked = fees_booked(deps)
    assert crypto.poll(deps, rc) == "failed"
    doc = refund_doc(deps, rc)
    assert doc["failure_reason"] == "nonce_replaced" and "fee" not in doc["chain"]
    assert fees_booked(deps) == booked
    assert_ledger_clean(deps)
