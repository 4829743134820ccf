"""``shared.chain.outgoing``'s decisions without a node: one poll of a single transaction
(``follow``) for every chain answer, the replacement rule, the nonce reservation and the gas
booking (the anvil tests: tests/refunds/test_crypto_refund_gas.py,
tests/custody/test_withdrawal_gas.py, tests/custody/test_sweeps.py)."""
from __future__ import annotations

import datetime as dt
import types

import pytest
from eth_account import Account

from shared.chain import outgoing
from shared.chain.rpc import RpcUnavailable
from shared.ledger import accounts

NOW = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
KEY = bytes(range(1, 33))
SENDER = Account.from_key(KEY).address
TO = "0x52908400098527886E0F7030069857D2E4169EE7"
NETWORK = types.SimpleNamespace(name="anvil", chain_id=31337, native_asset="ETH",
                                explorer_tx_url=lambda h: None)
GWEI = 10**9


def record(*, signed_at=NOW, nonce=4, max_fee=2 * GWEI, tip=GWEI // 10, confirmations=2):
    q = outgoing.Quote(pending_count=nonce, gas=21_000, fee_cap=max_fee, tip=tip)
    out = outgoing.sign_transfer(NETWORK, {"address": TO, "amount": "1000", "token": None}, q,
                                 nonce, KEY, SENDER, signed_at)
    return {**out, "required_confirmations": confirmations}


def receipt(block, status=1, gas_used=21_000, price=GWEI + 7):
    return {"blockNumber": hex(block), "blockHash": "0x" + "ab" * 32, "status": hex(status),
            "gasUsed": hex(gas_used), "effectiveGasPrice": hex(price)}


class FakeRpc:
    """Answers receipts by hash, the head, the fee market, and broadcasts (a batch POST)."""

    def __init__(self, *, head=10, receipts=None, answer=None, later=None, down=False):
        self.head, self.receipts, self.answer = head, dict(receipts or {}), answer
        self.later, self.down, self.sent = later, down, []
        self.network, self.timeout = "anvil", 1
        self.endpoints = [types.SimpleNamespace(url="http://node")]
        self.session = types.SimpleNamespace(post=self._post)

    def batch(self, calls):
        if self.down:
            raise RpcUnavailable("down")
        out = []
        for method, params in calls:
            if method == "eth_getTransactionReceipt":
                out.append(self.receipts.get(params[0]))
            elif method == "eth_blockNumber":
                out.append(hex(self.head))
            elif method == "eth_feeHistory":
                out.append({"baseFeePerGas": [hex(GWEI)], "reward": [["0x1"]]})
            elif method == "eth_maxPriorityFeePerGas":
                out.append(hex(GWEI // 10))
        return out

    def _post(self, url, json, timeout):
        self.sent += [c["params"][0] for c in json]
        if self.later:                      # what the chain shows after this broadcast
            self.receipts.update(self.later)
        answers = [{"id": c["id"], **({"error": {"message": self.answer}} if self.answer else
                                      {"result": "0x"})} for c in json]
        return types.SimpleNamespace(status_code=200, json=lambda: answers)


class FakeOwner:
    def __init__(self, out):
        self.out, self.saved, self.ended, self.expect = dict(out), [], [], None

    def save(self, change, *, expect_hash=None):
        self.expect = expect_hash
        self.out = change(self.out, NOW)
        self.saved.append(self.out)
        return self.out

    def end(self, ok, reason, fields):
        self.ended.append((ok, reason, fields))
        return "succeeded" if ok else "failed"

    def key(self):
        return KEY


def follow(out, rpc):
    owner = FakeOwner(out)
    return outgoing.follow(rpc, NETWORK, out, owner, now=NOW + dt.timedelta(minutes=1),
                           policy=outgoing.BumpPolicy()), owner


def test_mined_deep_enough_ends_ok_with_its_fee():
    out = record()
    outcome, owner = follow(out, FakeRpc(head=11, receipts={out["hash"]: receipt(10)}))
    assert outcome == "succeeded"
    [(ok, reason, fields)] = owner.ended
    assert ok and reason == "" and fields["hash"] == out["hash"] and fields["confirmations"] == 2
    assert fields["fee"] == str(21_000 * (GWEI + 7)) and fields["gas_used"] == 21_000


def test_reverted_ends_failed_and_shallow_waits():
    out = record()
    outcome, owner = follow(out, FakeRpc(head=10, receipts={out["hash"]: receipt(10, status=0)}))
    assert outcome == "failed" and owner.ended[0][1] == "transaction_reverted"
    assert owner.ended[0][2]["fee"]                          # a revert pays gas too
    outcome, owner = follow(out, FakeRpc(head=10, receipts={out["hash"]: receipt(10)}))
    assert outcome == "confirming" and owner.ended == []
    assert owner.saved[0]["confirmations"] == 1


def test_unmined_is_sent_again_and_a_taken_nonce_fails_it():
    out = record()
    rpc = FakeRpc(answer="already known")
    outcome, owner = follow(out, rpc)
    assert outcome == "pending" and rpc.sent == [out["raw"]]
    assert owner.saved[0]["last_broadcast"] == "known"
    outcome, owner = follow(out, FakeRpc(answer="nonce too low"))
    assert outcome == "failed" and owner.ended == [(False, "nonce_replaced", {})]
    # "nonce too low" because OUR transaction was mined meanwhile: followed, not failed
    rpc = FakeRpc(head=12, answer="nonce too low", later={out["hash"]: receipt(10)})
    outcome, owner = follow(out, rpc)
    assert outcome == "succeeded" and owner.ended[0][2]["block_number"] == 10


def test_an_overdue_transaction_is_replaced_with_the_same_nonce():
    out = record(signed_at=NOW - outgoing.BUMP_AFTER)
    rpc = FakeRpc()
    outcome, owner = follow(out, rpc)
    assert outcome == "bumped" and owner.expect == out["hash"]
    new = owner.saved[0]
    old_a, new_a = new["attempts"]
    assert new["bumps"] == 1 and new["hash"] == new_a["hash"] != old_a["hash"]
    assert rpc.sent == [new["raw"]]                         # the replacement goes out at once
    assert int(new_a["max_fee_per_gas"]) * 8 >= int(old_a["max_fee_per_gas"]) * 9
    assert int(new_a["max_priority_fee_per_gas"]) * 8 >= int(old_a["max_priority_fee_per_gas"]) * 9
    assert new_a["value"] == old_a["value"]
    assert Account.recover_transaction(new["raw"]) == SENDER
    assert int(outgoing.unsigned(new, 31337)["nonce"]) == out["nonce"]
    # either signing may be mined: the old one still counts
    outcome, owner = follow(new, FakeRpc(head=11, receipts={old_a["hash"]: receipt(10)}))
    assert outcome == "succeeded" and owner.ended[0][2]["hash"] == old_a["hash"]
    # at most MAX_BUMPS, and a record signed before ``attempts`` existed is only resent
    capped = {**out, "bumps": outgoing.MAX_BUMPS}
    assert follow(capped, FakeRpc())[0] == "pending"
    legacy = {k: out[k] for k in ("hash", "raw", "nonce", "sender", "gas", "max_fee_per_gas",
                                  "max_priority_fee_per_gas", "signed_at")}
    rpc = FakeRpc(head=11, receipts={out["hash"]: receipt(10)})
    assert follow(legacy, FakeRpc())[0] == "pending"
    assert follow(legacy, rpc)[0] == "succeeded"


def test_a_node_outage_is_a_delay():
    out = record()
    outcome, owner = follow(out, FakeRpc(down=True))
    assert outcome == "pending" and owner.saved[0]["last_error"] == "rpc unavailable"
    assert owner.ended == []


def test_due_for_bump_and_lost():
    out = record()
    assert not outgoing.due_for_bump(out, NOW + outgoing.BUMP_AFTER - dt.timedelta(seconds=1))
    assert outgoing.due_for_bump(out, NOW + outgoing.BUMP_AFTER)
    assert not outgoing.due_for_bump({**out, "broadcast_at": NOW + dt.timedelta(minutes=2)},
                                     NOW + outgoing.BUMP_AFTER)
    assert outgoing.lost(out, out["nonce"] + 1) and not outgoing.lost(out, out["nonce"])
    assert not outgoing.lost({**out, "mined": {"hash": out["hash"]}}, out["nonce"] + 1)


class Snap:
    def __init__(self, doc):
        self.doc, self.exists = doc, doc is not None

    def to_dict(self):
        return self.doc


class Writes:
    now = NOW

    def __init__(self):
        self.done = []

    def create(self, ref, data):
        self.done.append(("create", data))

    def update(self, ref, data):
        self.done.append(("update", data))


@pytest.mark.parametrize("stored, pending, first", [(None, 0, 0), (5, 3, 5), (2, 7, 7)])
def test_nonces_follow_the_higher_of_stored_and_chain(stored, pending, first):
    n = outgoing.Nonces(types.SimpleNamespace(collection=lambda c: types.SimpleNamespace(
        document=lambda d: d)), "anvil", SENDER)
    assert n.ref == f"anvil:{SENDER.lower()}"
    n.load(Snap(None if stored is None else {"next": stored}), pending)
    w = Writes()
    n.write(w)
    assert w.done == []                                      # nothing taken: nothing written
    assert [n.take(), n.take()] == [first, first + 1]
    n.write(w)
    [(kind, data)] = w.done
    assert kind == ("create" if stored is None else "update")
    assert data["next"] == first + 2 and data["role"] == outgoing.HOT_WALLET
    assert outgoing.is_hot_wallet(data) and not outgoing.is_hot_wallet({"next": 3})
    assert not outgoing.is_hot_wallet(None)


def test_gas_booking_rounds_down_to_gwei_and_keeps_the_rest():
    b = outgoing.gas_booking(scope="refunds", record_id="re_1", asset="ETH", livemode=False,
                             fee_wei=3 * GWEI + 17, description="gas", metadata={"refund": "re_1"})
    assert b.spec.amount == 3 and b.rest == 17 and b.spec.id == outgoing.fee_transfer_id("refunds", "re_1")
    assert (b.spec.debit_account_id, b.spec.credit_account_id) == (
        accounts.system_account_id("network_fees", "ETH", "test"),
        accounts.system_account_id("external", "ETH", "test"))
    assert b.fields() == {"fee": str(3 * GWEI + 17), "fee_unbooked_wei": "17",
                          "fee_transfer": b.spec.id}
    assert b.spec.metadata == {"refund": "re_1", "fee_wei": str(3 * GWEI + 17)}
    small = outgoing.gas_booking(scope="refunds", record_id="re_2", asset="ETH", livemode=False,
                                 fee_wei=GWEI - 1, description="gas", metadata={})
    assert small.spec is None and small.fields()["fee_transfer"] is None and small.rest == GWEI - 1
    assert outgoing.fee_transfer_id("refunds", "x") != outgoing.fee_transfer_id("custody", "x")
    assert outgoing.mined_gas({}, scope="refunds", record_id="re_3", kind="refund",
                              network=NETWORK, livemode=False) is None
