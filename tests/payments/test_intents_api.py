"""Payment intents over HTTP: create, read, list, update, cancel; roles, keys, tenant and mode
isolation, hostile input (functions-framework client, real emulators, real tokens)."""
from __future__ import annotations

import time

import pytest

from shared.identity.opaque import token_hash
from shared.payments import intents
from tests.payments.conftest import err
from tests.support.identity import auth_headers

URL = "/v1/payment_intents"


def create(payments, headers, key=None, **body):
    body = {"amount": 1000, "currency": "USD", **body}
    h = dict(headers)
    if key:
        h["Idempotency-Key"] = key
    return payments.post(URL, json=body, headers=h)


def test_create_then_read_list_update_cancel(deps, payments, merchant):
    h = merchant.headers("developer")
    r = create(payments, h, amount=12_345, description="order 7", metadata={"order": "7"},
               customer_email="Buyer@Example.com")
    assert r.status_code == 201, r.get_json()
    pi = r.get_json()
    assert pi["id"].startswith("pi_") and pi["object"] == "payment_intent"
    assert pi["merchant"] == merchant.id and pi["livemode"] is False
    assert pi["status"] == "requires_payment_method" and pi["amount_received"] == 0
    assert pi["client_secret"].startswith(pi["id"] + "_secret_")
    assert pi["expires_at"] - pi["created"] == 900 and pi["late_until"] - pi["expires_at"] == 86400
    assert pi["payment_method_types"] == ["wallet", "card", "crypto"]
    assert pi["required_confirmations"] == 1 and pi["tolerance_bps"] == 0
    assert pi["customer_email"] == "buyer@example.com"
    doc = deps.db.collection("payment_intents").document(pi["id"]).get().to_dict()
    assert doc["client_secret_hash"] == token_hash(pi["client_secret"])
    assert pi["client_secret"] not in str(doc)
    # the expiry timer is scheduled with the intent (through the outbox)
    outbox = [d.to_dict() for d in deps.db.collection("outbox").stream()]
    assert any(t["path"] == "/expire" and t["body"] == {"intent_id": pi["id"]}
               for o in outbox for t in o.get("tasks") or [])

    got = payments.get(f"{URL}/{pi['id']}", headers=merchant.headers("viewer"))
    assert got.status_code == 200 and "client_secret" not in got.get_json()
    assert got.get_json()["metadata"] == {"order": "7"}

    up = payments.post(f"{URL}/{pi['id']}", json={"description": "order 8",
                                                  "metadata": {"order": "", "x": "1"}}, headers=h)
    assert up.status_code == 200 and up.get_json()["description"] == "order 8"
    assert up.get_json()["metadata"] == {"x": "1"}

    lst = payments.get(URL, headers=merchant.headers("viewer"))
    assert lst.status_code == 200 and [x["id"] for x in lst.get_json()["data"]] == [pi["id"]]

    c = payments.post(f"{URL}/{pi['id']}/cancel", json={"cancellation_reason": "abandoned"},
                      headers=h)
    assert c.status_code == 200, c.get_json()
    body = c.get_json()
    assert body["status"] == "canceled" and body["cancellation_reason"] == "abandoned"
    assert [t["status"] for t in body["timeline"]] == ["requires_payment_method", "canceled"]
    again = payments.post(f"{URL}/{pi['id']}/cancel", json={}, headers=h)
    assert again.status_code == 200 and again.get_json()["status"] == "canceled"
    up = payments.post(f"{URL}/{pi['id']}", json={"description": "late"}, headers=h)
    assert up.status_code == 409 and err(up)["code"] == "intent_unexpected_state"


def test_idempotent_create_returns_the_same_intent(payments, merchant):
    h = merchant.headers("developer")
    a = create(payments, h, key="order-1")
    b = create(payments, h, key="order-1")
    assert a.status_code == 201 and b.status_code == 201
    assert a.get_json()["id"] == b.get_json()["id"]
    # the secret is shown once: never replayed
    assert a.get_json()["client_secret"] and b.get_json()["client_secret"] is None
    lst = payments.get(URL, headers=h).get_json()["data"]
    assert len(lst) == 1


def test_roles_and_api_keys(payments, merchant, api_key, make_merchant):
    for role, code in (("owner", 201), ("admin", 201), ("developer", 201), ("support", 403),
                       ("viewer", 403)):
        r = create(payments, merchant.headers(role))
        assert r.status_code == code, (role, r.get_json())
        if code == 403:
            assert err(r)["code"] == "insufficient_role"
    pi = create(payments, merchant.headers()).get_json()
    for role in ("support", "viewer"):
        assert payments.get(f"{URL}/{pi['id']}", headers=merchant.headers(role)).status_code == 200
        r = payments.post(f"{URL}/{pi['id']}/cancel", json={}, headers=merchant.headers(role))
        assert r.status_code == 403
    # a user without merchant context
    r = create(payments, auth_headers(merchant.users["owner"][1]))
    assert r.status_code == 403 and err(r)["code"] == "merchant_required"
    # a member of another merchant
    other = make_merchant(("owner",))
    r = payments.get(f"{URL}/{pi['id']}", headers=auth_headers(other.users["owner"][1],
                                                               **{"Payloom-Merchant": merchant.id}))
    assert r.status_code == 403 and err(r)["code"] == "not_a_member"
    # API keys: payments scopes gate them
    rw = api_key(merchant.id)
    r = create(payments, auth_headers(rw))
    assert r.status_code == 201 and r.get_json()["merchant"] == merchant.id
    ro = api_key(merchant.id, scopes=("payments:read",))
    assert create(payments, auth_headers(ro)).status_code == 403
    assert payments.get(f"{URL}/{pi['id']}", headers=auth_headers(ro)).status_code == 200
    none = api_key(merchant.id, scopes=("webhooks:read",))
    assert payments.get(f"{URL}/{pi['id']}", headers=auth_headers(none)).status_code == 403
    assert payments.get(URL, headers={}).status_code == 401


def test_tenant_and_mode_isolation(payments, merchant, make_merchant, api_key):
    other = make_merchant(("owner",))
    mine = create(payments, merchant.headers()).get_json()
    live = create(payments, merchant.headers(live=True)).get_json()
    theirs = create(payments, other.headers()).get_json()
    assert live["livemode"] is True and mine["livemode"] is False
    h, hl = merchant.headers(), merchant.headers(live=True)
    for pid, headers in ((theirs["id"], h), (live["id"], h), (mine["id"], hl),
                         (mine["id"], other.headers())):
        r = payments.get(f"{URL}/{pid}", headers=headers)
        assert r.status_code == 404 and err(r)["code"] == "resource_missing"
        assert payments.post(f"{URL}/{pid}/cancel", json={}, headers=headers).status_code == 404
        assert payments.post(f"{URL}/{pid}", json={"description": "x"},
                             headers=headers).status_code == 404
    assert [x["id"] for x in payments.get(URL, headers=h).get_json()["data"]] == [mine["id"]]
    assert [x["id"] for x in payments.get(URL, headers=hl).get_json()["data"]] == [live["id"]]
    # a test key sees test intents only, a live key live ones
    assert payments.get(f"{URL}/{live['id']}", headers=auth_headers(api_key(merchant.id))).status_code == 404
    lk = auth_headers(api_key(merchant.id, livemode=True))
    assert payments.get(f"{URL}/{live['id']}", headers=lk).status_code == 200
    # another merchant's cursor is not a cursor here
    r = payments.get(URL, query_string={"starting_after": theirs["id"]}, headers=h)
    assert r.status_code == 400 and err(r)["code"] == "invalid_cursor"


def test_list_filters_and_pagination(deps, payments, merchant):
    h = merchant.headers()
    ids = [create(payments, h, customer_email=f"c{i % 2}@example.com").get_json()["id"]
           for i in range(5)]
    payments.post(f"{URL}/{ids[0]}/cancel", json={}, headers=h)
    page1 = payments.get(URL, query_string={"limit": 2}, headers=h).get_json()
    assert page1["has_more"] is True and len(page1["data"]) == 2
    page2 = payments.get(URL, query_string={"limit": 10, "starting_after": page1["data"][-1]["id"]},
                         headers=h).get_json()
    assert len(page2["data"]) == 3 and not page2["has_more"]
    assert {x["id"] for x in page1["data"] + page2["data"]} == set(ids)
    canceled = payments.get(URL, query_string={"status": "canceled"}, headers=h).get_json()["data"]
    assert [x["id"] for x in canceled] == [ids[0]]
    c1 = payments.get(URL, query_string={"customer_email": "C1@example.com"}, headers=h).get_json()
    assert sorted(x["id"] for x in c1["data"]) == sorted([ids[1], ids[3]])
    now = int(time.time())
    r = payments.get(URL, query_string={"created[gte]": now + 3600}, headers=h)
    assert r.status_code == 200 and r.get_json()["data"] == []
    r = payments.get(URL, query_string={"created[lte]": now + 3600, "created[gte]": now - 3600},
                     headers=h)
    assert len(r.get_json()["data"]) == 5
    r = payments.get(URL, query_string={"status": "nope"}, headers=h)
    assert r.status_code == 400


@pytest.mark.parametrize("body,code,param", [
    ({"amount": -1}, "amount_not_positive", "amount"),
    ({"amount": 0}, "amount_not_positive", "amount"),
    ({"amount": 2**63}, "amount_too_large", "amount"),
    ({"amount": 1.5}, None, "amount"),
    ({"amount": "100"}, None, "amount"),
    ({"amount": True}, None, "amount"),
    ({"currency": "DOGE"}, "asset_unknown", "currency"),
    ({"currency": ""}, None, "currency"),
    ({"payment_method_types": ["cash"]}, None, "payment_method_types"),
    ({"payment_method_types": []}, None, "payment_method_types"),
    ({"metadata": {"k" * 41: "v"}}, None, "metadata"),
    ({"metadata": {f"k{i}": "v" for i in range(51)}}, None, "metadata"),
    ({"metadata": {"__name__": "v"}}, None, "metadata"),
    ({"customer_email": "not-an-email"}, None, "customer_email"),
    ({"expires_in_seconds": 10}, None, "expires_in_seconds"),
    ({"surprise": 1}, None, "surprise"),
])
def test_hostile_create_input_is_a_400(payments, merchant, body, code, param):
    r = create(payments, merchant.headers(), **body)
    assert r.status_code == 400, r.get_json()
    e = err(r)
    if code:
        assert e["code"] == code
    assert (e.get("param") or "").startswith(param), e


def test_hostile_ids_and_bodies(payments, merchant):
    h = merchant.headers()
    for pid in ("pi_missing", "nope", "%2e%2e", "pi_" + "a" * 300, "__x__"):
        r = payments.get(f"{URL}/{pid}", headers=h)
        assert r.status_code in (400, 404), (pid, r.status_code)
    r = payments.post(URL, data="{not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400
    r = payments.post(URL, json=[1, 2], headers=h)
    assert r.status_code == 400
    r = payments.post(URL, json={"amount": 100, "currency": "USD"},
                      headers={**h, "Payloom-Mode": "garbage"})
    assert r.status_code == 400 and err(r)["code"] == "invalid_mode"


def test_merchant_settings_bind_the_intent(deps, payments, make_merchant):
    """Accepted methods/assets, expiry, tolerance, speed policy and fees come from settings."""
    m = make_merchant(("owner",), settings={
        "accepted_methods": ["wallet"], "accepted_assets": ["USD", "USDC"], "speed_policy": "low",
        "payment_tolerance_bps": 100, "intent_expiry_seconds": 600,
        "late_payment_window_seconds": 3600})
    r = create(payments, m.headers())
    assert r.status_code == 201, r.get_json()
    pi = r.get_json()
    assert pi["payment_method_types"] == ["wallet"] and pi["required_confirmations"] == 6
    assert pi["tolerance_bps"] == 100 and pi["expires_at"] - pi["created"] == 600
    assert pi["late_until"] - pi["expires_at"] == 3600
    r = create(payments, m.headers(), payment_method_types=["crypto"])
    assert r.status_code == 400 and err(r)["code"] == "payment_method_not_accepted"
    r = create(payments, m.headers(), currency="KHR")
    assert r.status_code == 400 and err(r)["code"] == "currency_not_accepted"


def test_load_for_update_api(deps, payments, merchant):
    from shared.platform.uow import run_unit
    pi = create(payments, merchant.headers()).get_json()
    ref, doc = run_unit(deps, lambda uow: intents.load_for_update(uow, pi["id"]))
    assert doc["id"] == pi["id"] and ref.id == pi["id"]
    with pytest.raises(intents.NotFound):
        run_unit(deps, lambda uow: intents.load_for_update(uow, "pi_nothere"))
