"""The wallet API over HTTP (functions-framework test client, real identity tokens)."""
import csv
import io

from shared.ledger import accounts, service
from shared.ledger.model import TransferSpec
from shared.platform.ids import new_id
from shared.wallet.limits import TierLimits, WalletPolicy
from tests.ledger.conftest import fund, unit
from tests.wallet.conftest import generous_policy, link_handle


def p2p(wallet, headers, to, amount=100, asset="USD", key=None, **extra):
    h = dict(headers)
    if key:
        h["Idempotency-Key"] = key
    return wallet.post("/v1/wallet/transfers", json={"to": to, "amount": amount, "asset": asset, **extra},
                       headers=h)


def err(resp):
    return resp.get_json()["error"]


def test_balances_and_p2p_by_username_phone_and_wallet_address(deps, wallet, make_user, policy):
    policy(generous_policy())
    (a, ha), (b, hb) = make_user("alice_w"), make_user()
    link_handle(deps, b, "phone", "+85512345678")
    link_handle(deps, b, "wallet", "0x" + "Ab" * 20)
    fund(deps, a, 10_000)
    r = wallet.get("/v1/wallet/balances", headers=ha)
    usd = next(x for x in r.get_json()["data"] if x["asset"] == "USD")
    assert r.status_code == 200 and usd["available"] == 10_000 and usd["available_decimal"] == "100.00"
    user_b = deps.db.collection("users").document(b).get().to_dict()
    for to in ({"username": user_b["username"].upper()}, {"phone": "+85512345678"},
               {"wallet_address": "0x" + "aB" * 20}):
        r = p2p(wallet, ha, to, 1000, description="lunch")
        assert r.status_code == 201, r.get_json()
        body = r.get_json()
        assert body["to"] == {"user_id": b} and body["result"] == "created"
        assert body["amount_decimal"] == "10.00" and body["status"] == "posted"
    assert body["balance_after"]["available"] == 7000
    got = {x["asset"]: x for x in wallet.get("/v1/wallet/balances", headers=hb).get_json()["data"]}
    assert got["USD"]["posted"] == 3000 and got["KHR"]["posted"] == 0
    # amount_decimal is accepted as an exact alternative
    r = p2p(wallet, ha, {"phone": "+85512345678"}, None, amount_decimal="0.25")
    assert r.status_code == 201 and r.get_json()["amount"] == 25


def test_bad_input_is_a_clear_4xx_envelope(deps, wallet, make_user, policy):
    policy(generous_policy())
    (a, ha), (b, _) = make_user(), make_user()
    fund(deps, a, 500)
    bu = deps.db.collection("users").document(b).get().get("username")
    au = deps.db.collection("users").document(a).get().get("username")
    cases = [
        ({"to": {"username": bu}, "amount": 0, "asset": "USD"}, 400, "amount_not_positive", "amount"),
        ({"to": {"username": bu}, "amount": -5, "asset": "USD"}, 400, "amount_not_positive", "amount"),
        ({"to": {"username": bu}, "amount": 1.5, "asset": "USD"}, 400, "parameter_invalid", "amount"),
        ({"to": {"username": bu}, "amount": "100", "asset": "USD"}, 400, "parameter_invalid", "amount"),
        ({"to": {"username": bu}, "amount": 5, "asset": "DOGE"}, 400, "asset_unknown", "asset"),
        ({"to": {"username": bu}, "amount_decimal": "1.001", "asset": "USD"}, 400, "amount_too_precise",
         "amount_decimal"),
        ({"to": {"username": bu}, "amount_decimal": "0.5", "asset": "KHR"}, 400, "amount_too_precise",
         "amount_decimal"),
        ({"to": {"username": bu}, "amount": 2**63, "asset": "USD"}, 400, "amount_too_large", "amount"),
        ({"to": {"username": au}, "amount": 5, "asset": "USD"}, 400, "transfer_to_self", "to"),
        ({"to": {"username": "nobody_here"}, "amount": 5, "asset": "USD"}, 404, "recipient_not_found", "to"),
        ({"to": {"username": bu, "phone": "+85511111111"}, "amount": 5, "asset": "USD"}, 400,
         "parameter_invalid", "to"),
        ({"to": {"phone": "012345"}, "amount": 5, "asset": "USD"}, 400, "parameter_invalid", "to.phone"),
        ({"to": {"username": bu}, "amount": 501, "asset": "USD"}, 422, "insufficient_funds", "amount"),
        ({"to": {"username": bu}, "amount": 5, "asset": "USD", "memo": "x"}, 400, "parameter_unknown", "memo"),
    ]
    for body, status, code, param in cases:
        r = wallet.post("/v1/wallet/transfers", json=body, headers=ha)
        assert r.status_code == status, (body, r.get_json())
        e = err(r)
        assert e["code"] == code and e["param"] == param and e["message"], (body, e)
    fund(deps, b, 1)
    unit(deps, accounts.close_account, accounts.user_wallet_id(b, "USD"))
    r = p2p(wallet, ha, {"username": bu}, 5)
    assert r.status_code == 422 and err(r)["code"] == "account_closed" and err(r)["param"] == "to"
    unauth = wallet.post("/v1/wallet/transfers", json={"to": {"username": bu}, "amount": 5, "asset": "USD"})
    assert unauth.status_code == 401 and err(unauth)["type"] == "authentication_error"
    assert wallet.get("/v1/wallet/balances").status_code == 401
    r = wallet.post("/v1/wallet/transfers", data="nope", headers={**ha, "Content-Type": "application/json"})
    assert r.status_code == 400 and err(r)["code"] == "invalid_json"
    got = {x["asset"]: x for x in wallet.get("/v1/wallet/balances", headers=ha).get_json()["data"]}
    assert got["USD"]["available"] == 500       # nothing moved


def test_retries_are_harmless_even_after_the_idempotency_record_is_lost(deps, wallet, make_user, policy):
    policy(generous_policy())
    (a, ha), (b, _) = make_user(), make_user()
    fund(deps, a, 1000)
    to = {"username": deps.db.collection("users").document(b).get().get("username")}
    first = p2p(wallet, ha, to, 300, key="order-42")
    replay = p2p(wallet, ha, to, 300, key="order-42")
    assert first.status_code == replay.status_code == 201
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.get_json() == first.get_json()
    other = p2p(wallet, ha, to, 301, key="order-42")
    assert other.status_code == 409 and err(other)["type"] == "idempotency_error"
    # The idempotency record is pruned (24 h) or lost: the transfer id derives from the key,
    # so the retry finds the same ledger transfer and moves nothing twice.
    for snap in deps.db.collection("idempotency_keys").stream():
        snap.reference.delete()
    again = p2p(wallet, ha, to, 300, key="order-42")
    assert again.status_code == 201 and again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["result"] == "exists"
    assert accounts.balance(deps.db, accounts.user_wallet_id(a, "USD")).posted == 700
    transfers = [t for t in deps.db.collection("ledger_transfers").stream() if t.get("code") == "p2p"]
    assert len(transfers) == 1
    usage = deps.db.collection("wallet_usage").document(a).get().to_dict()
    assert usage["daily"]["USD"] == 300 and len(usage["recent"]) == 1   # counted once


def test_history_pagination_filters_balance_after_and_tenant_isolation(deps, wallet, make_user, policy):
    policy(generous_policy())
    (a, ha), (b, hb) = make_user(), make_user()
    fund(deps, a, 1000)
    fund(deps, a, 50_000, "KHR")
    to = {"username": deps.db.collection("users").document(b).get().get("username")}
    for amount in (100, 200, 300):
        assert p2p(wallet, ha, to, amount).status_code == 201
    page1 = wallet.get("/v1/wallet/transactions?limit=2&asset=USD", headers=ha).get_json()
    assert page1["has_more"] is True and [t["amount"] for t in page1["data"]] == [300, 200]
    assert [t["balance_after"]["available"] for t in page1["data"]] == [400, 700]
    assert page1["data"][0]["direction"] == "out" and page1["data"][0]["counterparty"] == {"user_id": b}
    page2 = wallet.get(f"/v1/wallet/transactions?limit=2&asset=USD&starting_after={page1['data'][-1]['id']}",
                       headers=ha).get_json()
    assert [t["amount"] for t in page2["data"]] == [100, 1000] and page2["has_more"] is False
    assert page2["data"][-1]["type"] == "topup" and page2["data"][-1]["direction"] == "in"
    all_a = wallet.get("/v1/wallet/transactions?limit=100", headers=ha).get_json()["data"]
    assert {t["asset"] for t in all_a} == {"USD", "KHR"} and len(all_a) == 5
    created = all_a[0]["created"]
    import datetime as dt
    ts = int(dt.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    future = wallet.get(f"/v1/wallet/transactions?created[gte]={ts + 3600}", headers=ha).get_json()
    assert future["data"] == []
    past = wallet.get(f"/v1/wallet/transactions?created_gte={ts - 3600}&created[lte]={ts + 3600}",
                      headers=ha).get_json()
    assert len(past["data"]) == 5
    bad = wallet.get("/v1/wallet/transactions?created[gte]=yesterday", headers=ha)
    assert bad.status_code == 400 and err(bad)["param"] == "created[gte]"
    # B sees only B's side, with B's balance after; never A's entries.
    mine_b = wallet.get("/v1/wallet/transactions", headers=hb).get_json()["data"]
    assert [t["direction"] for t in mine_b] == ["in", "in", "in"]
    assert [t["balance_after"]["available"] for t in mine_b] == [600, 300, 100]
    leak = wallet.get(f"/v1/wallet/transactions?starting_after={page1['data'][0]['id']}", headers=hb)
    assert leak.status_code == 400 and err(leak)["code"] == "invalid_cursor"
    r = wallet.get("/v1/wallet/transactions?asset=DOGE", headers=ha)
    assert r.status_code == 400 and err(r)["code"] == "asset_unknown"


def test_csv_statement(deps, wallet, make_user, policy):
    policy(generous_policy())
    (a, ha), (b, _) = make_user(), make_user()
    fund(deps, a, 10_000)
    to = {"username": deps.db.collection("users").document(b).get().get("username")}
    assert p2p(wallet, ha, to, 1234, description="=HYPERLINK(\"http://evil\")").status_code == 201
    today = deps.clock.now().strftime("%Y-%m-%d")
    r = wallet.get(f"/v1/wallet/statement.csv?asset=USD&from={today}&to={today}", headers=ha)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [(x["type"], x["direction"], x["amount"], x["balance_after"]) for x in rows] == [
        ("topup", "in", "100.00", "100.00"), ("p2p", "out", "-12.34", "87.66")]
    assert rows[1]["description"].startswith("'=")          # no formula injection
    assert rows[1]["counterparty"] == b
    empty = wallet.get("/v1/wallet/statement.csv?asset=USD&from=2001-01-01&to=2001-01-31", headers=ha)
    assert empty.get_data(as_text=True).strip().count("\n") == 0    # header only
    bad = wallet.get("/v1/wallet/statement.csv?asset=USD&from=2026-02-01&to=2026-01-01", headers=ha)
    assert bad.status_code == 400 and err(bad)["param"] == "from"
    assert wallet.get("/v1/wallet/statement.csv", headers=ha).status_code == 400   # asset required


def test_backend_records_link_onchain_hashes_to_entries(deps, wallet, make_user, service_headers):
    (a, ha), (b, _) = make_user(), make_user()
    fund(deps, a, 2_000_000, "USDC")
    tx = next(t.to_dict() for t in deps.db.collection("ledger_transfers").stream())
    body = {"user_id": a, "transfer_id": tx["id"], "tx_hash": "0x" + "ab" * 32, "chain_id": 31611,
            "description": "Deposit from Mezo", "raw_amount": "2000000", "asset": "USDC"}
    assert wallet.post("/v1/wallet/records", json=body, headers=ha).status_code == 401   # users can't
    r = wallet.post("/v1/wallet/records", json=body, headers={**service_headers, "Idempotency-Key": "rec-1"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["amount"] == 2_000_000
    hist = wallet.get("/v1/wallet/transactions", headers=ha).get_json()["data"]
    assert hist[0]["records"][0]["tx_hash"] == "0x" + "ab" * 32
    for override, status, code in (({"raw_amount": "2000001"}, 422, "amount_mismatch"),
                                   ({"user_id": b}, 404, "transfer_not_found"),
                                   ({"transfer_id": "txf_nonexistent1"}, 404, "transfer_not_found"),
                                   ({"asset": "ETH"}, 400, "asset_mismatch")):
        bad = wallet.post("/v1/wallet/records", json={**body, **override}, headers=service_headers)
        assert bad.status_code == status and err(bad)["code"] == code, (override, bad.get_json())
    fund(deps, b, 10, "ETH")
    eth_tx = next(t.to_dict() for t in deps.db.collection("ledger_transfers").stream() if t.get("asset") == "ETH")
    dust = wallet.post("/v1/wallet/records", json={"user_id": b, "transfer_id": eth_tx["id"],
                                                    "raw_amount": "10000000001"}, headers=service_headers)
    assert dust.status_code == 400 and err(dust)["code"] == "amount_dust"


def test_limits_daily_monthly_velocity_and_kyc_tiers(deps, wallet, make_user, policy):
    big = 10**12
    policy(WalletPolicy(tiers={
        0: TierLimits(daily={"USD": 1000}, monthly={"USD": 1500}, velocity_count=3,
                      velocity_window_seconds=600),
        1: TierLimits(daily={"USD": big}, monthly={"USD": big}, velocity_count=100,
                      velocity_window_seconds=600)}))
    (a, ha), (b, _) = make_user(), make_user()
    fund(deps, a, 100_000)
    fund(deps, a, 100, "KHR")
    to = {"username": deps.db.collection("users").document(b).get().get("username")}
    assert p2p(wallet, ha, to, 600).status_code == 201
    r = p2p(wallet, ha, to, 401)
    assert r.status_code == 422 and err(r)["code"] == "daily_limit_exceeded" and err(r)["param"] == "amount"
    assert p2p(wallet, ha, to, 400).status_code == 201
    r = p2p(wallet, ha, to, 1)
    assert r.status_code == 422 and err(r)["code"] == "daily_limit_exceeded"
    r = p2p(wallet, ha, to, 1, asset="KHR")                 # an asset the tier does not list: closed
    assert r.status_code == 422 and err(r)["code"] == "daily_limit_exceeded"
    # Velocity: the third transfer in the window is fine, the fourth is refused.
    deps.db.collection("users").document(a).update({"kyc_tier": 0})
    usage = deps.db.collection("wallet_usage").document(a)
    usage.update({"day": "2000-01-01"})                      # a new day, same month and window
    assert p2p(wallet, ha, to, 100).status_code == 201
    r = p2p(wallet, ha, to, 100)
    assert r.status_code == 429 and err(r)["code"] == "velocity_limit_exceeded"
    assert int(r.headers["Retry-After"]) > 0
    usage.update({"day": "2000-01-01", "recent": []})
    r = p2p(wallet, ha, to, 500)
    assert r.status_code == 422 and err(r)["code"] == "monthly_limit_exceeded"  # 1100 + 500 > 1500
    # KYC tier 1 lifts the limits.
    deps.db.collection("users").document(a).update({"kyc_tier": 1})
    assert p2p(wallet, ha, to, 5000).status_code == 201
    assert accounts.balance(deps.db, accounts.user_wallet_id(a, "USD")).posted == 100_000 - 6100


def test_p2p_fee_is_a_linked_leg_to_the_hot_fee_account(deps, wallet, make_user, policy):
    policy(generous_policy(p2p_fee_bps=100, p2p_fee_min={"USD": 5}))
    (a, ha), (b, _) = make_user(), make_user()
    fund(deps, a, 1000)
    to = {"username": deps.db.collection("users").document(b).get().get("username")}
    r = p2p(wallet, ha, to, 1000)                            # 1000 + fee 10 > 1000: all or nothing
    assert r.status_code == 422 and err(r)["code"] == "insufficient_funds"
    r = p2p(wallet, ha, to, 900)
    assert r.status_code == 201 and r.get_json()["fee"] == 9 and r.get_json()["balance_after"]["available"] == 91
    fees = accounts.system_account_id("fees", "USD")
    assert accounts.balance(deps.db, fees).credits_posted == 9
    types = [t["type"] for t in wallet.get("/v1/wallet/transactions", headers=ha).get_json()["data"]]
    assert types[:2] == ["p2p_fee", "p2p"] or types[:2] == ["p2p", "p2p_fee"]


def test_a_hold_to_a_system_account_shows_the_system_side_not_a_500(deps, wallet, make_user):
    """Payments will hold funds for a merchant's system account: the payer's view of that hold
    and of its history entry names the other side as ``{"account": "system"}``."""
    a, ha = make_user()
    payer = fund(deps, a, 1000)
    merchant = accounts.open_account(deps.db, accounts.system_template("settlement", "USD", "m1"),
                                     deps.clock.now())["id"]
    hold = new_id("txf")
    service.transfer_now(deps, TransferSpec(id=hold, debit_account_id=payer,
                                            credit_account_id=merchant, amount=250, asset="USD",
                                            pending=True, timeout_seconds=600))
    r = wallet.get(f"/v1/wallet/holds/{hold}", headers=ha)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["from"] == {"user_id": a} and r.get_json()["to"] == {"account": "system"}
    entry = wallet.get("/v1/wallet/transactions", headers=ha).get_json()["data"][0]
    assert (entry["transfer_id"], entry["counterparty"]) == (hold, {"account": "system"})
    # The merchant side is not the user's to capture.
    cap = wallet.post(f"/v1/wallet/holds/{hold}/capture", json={}, headers=ha)
    assert cap.status_code == 403 and cap.get_json()["error"]["code"] == "hold_capture_by_payee_only"
