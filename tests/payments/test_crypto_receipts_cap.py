"""A transfer beyond the intent's cap of separate payments is kept as an unmatched payment (to
refund), not an error: an error would make Pub/Sub redeliver the chain event forever."""
from __future__ import annotations

from shared.payments import crypto_events, intents
from shared.platform.uow import run_unit

ADDRESS = "0xAbC0000000000000000000000000000000000001"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _transfer(pid: str, n: int) -> dict:
    return {"intent_id": pid, "network": "anvil", "tx_hash": f"0x{n:064x}", "log_index": 0,
            "to": ADDRESS, "asset": "USDC", "token": TOKEN, "amount": "10", "status": "confirmed"}


def test_a_transfer_over_the_receipt_cap_is_recorded_as_unmatched(deps, payments, merchant,
                                                                  monkeypatch):
    r = payments.post("/v1/payment_intents", json={"amount": 100, "currency": "USDC"},
                      headers=merchant.headers())
    assert r.status_code == 201, r.get_json()
    pid = r.get_json()["id"]
    intents.intent_ref(deps.db, pid).update({"crypto": {
        "network": "anvil", "chain_id": 31337, "asset": "USDC", "token": TOKEN,
        "address": ADDRESS, "amount_due": "100"}})
    monkeypatch.setattr(intents, "MAX_RECEIPTS", 1)

    first = run_unit(deps, lambda uow: crypto_events.apply_transfer(uow, _transfer(pid, 1)))
    second = run_unit(deps, lambda uow: crypto_events.apply_transfer(uow, _transfer(pid, 2)))
    again = run_unit(deps, lambda uow: crypto_events.apply_transfer(uow, _transfer(pid, 2)))

    assert first.startswith("confirmed:")
    assert second == "unmatched:too_many_payments:confirmed" and again == "unchanged"
    doc = intents.intent_ref(deps.db, pid).get().to_dict()
    assert [r["reference"] for r in doc["receipts"]] == [f"anvil:0x{1:064x}:0"]
    assert doc["amount_received"] == 10
    assert [(u["reference"], u["reason"]) for u in doc["crypto"]["unmatched"]] == [
        (f"anvil:0x{2:064x}:0", "too_many_payments")]
