"""What the wallet's money movements emit: only declared types, payloads that match their schema,
one event per user involved, each showing only that user's side (issue 7, item 5)."""
from __future__ import annotations

from shared.ledger import accounts
from shared.platform import catalog
from tests.ledger.conftest import fund
from tests.wallet.conftest import generous_policy


def _events(deps, tenant):
    """The ledger's events for one tenant (identity's own, e.g. user.created, are not ours)."""
    return [e.to_dict() for e in deps.db.collection("events").stream()
            if e.get("tenant") == tenant and e.get("type").startswith("transfer.")]


def test_p2p_and_hold_events_are_declared_match_their_schema_and_show_one_side(
        deps, wallet, make_user, policy, monkeypatch):
    policy(generous_policy())
    (payer, hp), (payee, hq) = make_user(), make_user()
    fund(deps, payer, 1000)
    # From here on (wallet code only) an undeclared event type fails the emit.
    monkeypatch.setattr(catalog, "REQUIRE_DECLARED", True)
    payee_name = deps.db.collection("users").document(payee).get().get("username")
    to = {"username": payee_name}
    sent = wallet.post("/v1/wallet/transfers", json={"to": to, "amount": 100, "asset": "USD"},
                       headers={**hp, "Idempotency-Key": "ev-p2p"})
    assert sent.status_code == 201, sent.get_json()
    hold = wallet.post("/v1/wallet/holds", json={"to": to, "amount": 300, "asset": "USD"},
                       headers=hp).get_json()
    cap = wallet.post(f"/v1/wallet/holds/{hold['id']}/capture", json={"amount": 200}, headers=hq)
    assert cap.status_code == 200 and cap.get_json()["captured_amount"] == 200, cap.get_json()
    h2 = wallet.post("/v1/wallet/holds", json={"to": to, "amount": 50, "asset": "USD"},
                     headers=hp).get_json()
    assert wallet.post(f"/v1/wallet/holds/{h2['id']}/cancel", headers=hp).status_code == 200
    # A replay and a refused request emit nothing more.
    assert wallet.post("/v1/wallet/transfers", json={"to": to, "amount": 100, "asset": "USD"},
                       headers={**hp, "Idempotency-Key": "ev-p2p"}).status_code == 201
    assert wallet.post("/v1/wallet/transfers", json={"to": to, "amount": 10**6, "asset": "USD"},
                       headers=hp).status_code == 422

    fee = sent.get_json()["fee"]
    payer_acc, payee_acc = (accounts.user_wallet_id(u, "USD") for u in (payer, payee))
    # p2p, hold, capture, hold, cancel: one event each per user involved; the payer also has
    # the funding top-up and the fee leg (whose other side is a system account).
    created = {payer: 4 + (1 if fee else 0), payee: 3}
    for tenant, own, other in ((payer, payer_acc, payee_acc), (payee, payee_acc, payer_acc)):
        events = _events(deps, tenant)
        assert sorted(e["type"] for e in events) == sorted(
            ["transfer.created"] * created[tenant] + ["transfer.posted", "transfer.voided"]), tenant
        for e in events:
            catalog.check(e["type"], e["data"])           # matches the declared payload
            assert catalog.CATALOG[e["type"]].public
            after = e["data"]["object"]["balances_after"]
            assert own in after and other not in after    # only the viewer's own side
    posted = next(e for e in _events(deps, payer) if e["type"] == "transfer.posted")["data"]["object"]
    assert (posted["pending_id"], posted["amount"], posted["status"]) == (hold["id"], 200, "posted")
    # A checked debit knows the balance after it exactly; a blind shard write says null.
    p2p = next(e for e in _events(deps, payer) if e["data"]["object"]["id"] == sent.get_json()["id"])
    assert p2p["data"]["object"]["balances_after"][payer_acc]["available"] == 1000 - 100 - fee
