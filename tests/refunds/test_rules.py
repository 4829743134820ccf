"""Pure rules of refunds: the split (cap and proportional fee), leg distribution, addresses,
transaction fields, deterministic signing. No emulator."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.platform.errors import Conflict, InvalidRequest
from shared.refunds import amounts, crypto, hot_wallet, service

CAP = amounts.Captured(amount=1000, gross=1000, fee=55, asset="USD", method="wallet")


def test_partial_then_full_returns_the_fee_in_proportion():
    a = amounts.split(CAP, amounts.Totals(), 400)
    assert (a.amount, a.ledger, a.fee, a.net) == (400, 400, 22, 378)
    t = amounts.Totals().plus(a)
    b = amounts.split(CAP, t, None)                       # the rest
    assert (b.amount, b.ledger, b.fee, b.net) == (600, 600, 33, 567)
    t = t.plus(b)
    assert (t.amount, t.ledger, t.fee, t.net) == (1000, 1000, 55, 945)
    with pytest.raises(Conflict) as e:
        amounts.split(CAP, t, 1)
    assert e.value.code == "charge_already_refunded"


def test_over_refund_and_bad_amounts_are_refused():
    with pytest.raises(InvalidRequest) as e:
        amounts.split(CAP, amounts.Totals(amount=700, ledger=700, fee=38, net=662), 301)
    assert e.value.code == "amount_too_large" and e.value.param == "amount"
    for bad in (0, -5, True):
        with pytest.raises(InvalidRequest):
            amounts.split(CAP, amounts.Totals(), bad)


def test_cross_currency_takes_the_locked_proportion_and_the_last_takes_the_rest():
    # a 10.00 USD intent settled as 10_003_000 USDC units (rounded up at the locked rate)
    cap = amounts.Captured(amount=1000, gross=10_003_000, fee=100_030, asset="USDC", method="crypto")
    a = amounts.split(cap, amounts.Totals(), 333)
    assert a.ledger == 10_003_000 * 333 // 1000
    t = amounts.Totals().plus(a)
    b = amounts.split(cap, t, None)
    assert a.ledger + b.ledger == 10_003_000 and a.fee + b.fee == 100_030
    # a cent of KHR worth less than one unit of a coarse asset
    tiny = amounts.Captured(amount=100_000, gross=3, fee=0, asset="USDC", method="crypto")
    with pytest.raises(InvalidRequest) as e:
        amounts.split(tiny, amounts.Totals(), 1)
    assert e.value.code == "amount_too_small"


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**12), st.integers(0, 10_000), st.data())
def test_any_sequence_of_refunds_stays_inside_and_adds_up(gross, fee_bps, data):
    """Invariants of the fee rule: every share non-negative, the merchant never gives back more
    than it got (G − F), the platform never more than F, and a complete sequence returns
    exactly G and F — also with refunds failing (released) along the way."""
    captured = data.draw(st.integers(1, 10**9))
    fee = min(gross, gross * fee_bps // 10_000)
    cap = amounts.Captured(amount=captured, gross=gross, fee=fee, asset="ETH", method="crypto")
    totals, live = amounts.Totals(), []
    for _ in range(data.draw(st.integers(1, 8))):
        left = cap.amount - totals.amount
        if left <= 0:
            break
        if live and data.draw(st.booleans()):            # a pending refund fails: released
            failed = live.pop(data.draw(st.integers(0, len(live) - 1)))
            totals = totals.minus(failed)
            continue
        want = data.draw(st.integers(1, left))
        try:
            s = amounts.split(cap, totals, want)
        except InvalidRequest as exc:
            assert exc.code == "amount_too_small"
            continue
        assert s.amount == want and s.fee >= 0 and s.net >= 0 and s.ledger == s.fee + s.net > 0
        totals = totals.plus(s)
        live.append(s)
        assert totals.ledger <= gross and totals.fee <= fee and totals.net <= gross - fee
        assert totals.amount <= captured
    if totals.amount < captured:
        last = amounts.split(cap, totals, None)
        totals = totals.plus(last)
    assert (totals.amount, totals.ledger, totals.fee, totals.net) == (captured, gross, fee, gross - fee)


def test_distribute_over_legs_in_order():
    legs = [("txf_a", 100), ("txf_b", 50)]
    assert amounts.distribute(120, legs, {}) == [("txf_a", 100), ("txf_b", 20)]
    assert amounts.distribute(30, legs, {"txf_a": 100, "txf_b": 10}) == [("txf_b", 30)]
    with pytest.raises(Conflict):
        amounts.distribute(41, legs, {"txf_a": 100, "txf_b": 10})


def test_wallet_reversals_name_the_payment_legs():
    from shared.payments import settlement
    intent = {"id": "pi_x", "tenant": "mch_x", "currency": "USD",
              "receipts": [{"reference": "wallet:usr_1", "amount": 1000, "settled": True,
                            "fee": 55, "generation": 0, "method": "wallet"}]}
    net_id, fee_id = settlement.transfer_ids("pi_x", "wallet:usr_1", 0)
    split = amounts.Split(amount=400, ledger=400, fee=22, net=378)
    specs, taken = service.wallet_reversals(intent, "re_1", split, {})
    assert [(s.reverses, s.amount) for s in specs] == [(net_id, 378), (fee_id, 22)]
    assert taken == {net_id: 378, fee_id: 22}
    again, _ = service.wallet_reversals(intent, "re_1", split, {})
    assert [s.id for s in again] == [s.id for s in specs]        # derived: a re-run is a replay


def test_captured_ignores_unsettled_and_refuses_mixed():
    doc = {"currency": "USD", "method": "wallet", "receipts": [
        {"reference": "a", "amount": 10, "settled": True, "fee": 1, "method": "wallet"},
        {"reference": "b", "amount": 5, "settled": False, "method": "wallet"}]}
    cap = amounts.captured(doc)
    assert (cap.amount, cap.gross, cap.fee) == (10, 10, 1)
    assert amounts.captured({"currency": "USD", "receipts": []}) is None
    doc["receipts"][1].update(settled=True, method="crypto")
    with pytest.raises(Conflict):
        amounts.captured(doc)


def test_addresses():
    good = "0x52908400098527886E0F7030069857D2E4169EE7"
    assert crypto.check_address(good) == good
    assert crypto.check_address(good.lower()) == good
    for bad, code in ((None, "address_required"), ("0x52908400098527886e0F7030069857D2E4169EE7",
                                                    "invalid_address"),
                      ("0x" + "00" * 20, "invalid_address"), ("0x1234", "invalid_address")):
        with pytest.raises(InvalidRequest) as e:
            crypto.check_address(bad)
        assert e.value.code == code and e.value.param == "address"


def test_transaction_fields_and_fee_cap():
    to = "0x52908400098527886E0F7030069857D2E4169EE7"
    eth = crypto.transaction_fields({"address": to, "amount": "400000000000000000", "token": None})
    assert eth == {"to": to, "value": 4 * 10**17, "data": "0x"}
    token = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    erc = crypto.transaction_fields({"address": to, "amount": "2000000", "token": token})
    assert erc["to"] == token and erc["value"] == 0
    assert erc["data"] == "0xa9059cbb" + "00" * 12 + to[2:].lower() + (2_000_000).to_bytes(32, "big").hex()
    assert crypto.max_fee(10, 2) == 22
    assert crypto.classify_broadcast_error("already known") == "known"
    assert crypto.classify_broadcast_error("nonce too low: next nonce 5, tx nonce 4") == "nonce_used"
    assert crypto.classify_broadcast_error("insufficient funds for gas") == "error"


def test_signing_is_deterministic_and_nonce_rule():
    from eth_account import Account
    key = bytes(range(1, 33))
    tx = {"chainId": 31337, "nonce": 3, "to": "0x52908400098527886E0F7030069857D2E4169EE7",
          "value": 5, "data": "0x", "gas": 21000, "maxFeePerGas": 2 * 10**9,
          "maxPriorityFeePerGas": 10**9}
    raw1, h1 = hot_wallet.sign(tx, key)
    raw2, h2 = hot_wallet.sign(tx, key)
    assert (raw1, h1) == (raw2, h2) and raw1.startswith("0x02")
    decoded = Account.recover_transaction(raw1)
    assert decoded == Account.from_key(key).address
    assert hot_wallet.next_nonce(None, 0) == 0
    assert hot_wallet.next_nonce(5, 3) == 5          # signed, not yet broadcast: reserved
    assert hot_wallet.next_nonce(2, 7) == 7          # another tool used the address: follow it
    assert "sealed" in repr(hot_wallet.HotKey("0xabc", key)) and key.hex() not in repr(
        hot_wallet.HotKey("0xabc", key))
