"""Payment links over HTTP: create in three pricing modes, the public checkout (one intent per
client key, the secret shown again to the same key, amounts checked, inactive links hidden,
rate-limited), paid by wallet, the button snippet, isolation and hostile input."""
from __future__ import annotations

import datetime as dt

from shared.invoices import links
from shared.invoices.http import CHECKOUT_IP
from shared.platform.clock import FrozenClock
from tests.invoices.conftest import LINKS, events_of
from tests.ledger.conftest import fund
from tests.payments.conftest import err

KEY = "visit-0123456789abcdef"


def make_link(client, headers, **body):
    body = {"currency": "USD", "amount": 1500, **body}
    r = client.post(LINKS, json=body, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def checkout(client, link_id, ip="203.0.113.9", **body):
    return client.post(f"{LINKS}/{link_id}/intents", json={"client_key": KEY, **body},
                       headers={"X-Forwarded-For": ip})


def test_create_modes_and_events(deps, links_client, merchant):
    h = merchant.headers("developer")
    fixed = make_link(links_client, h, description="Coffee beans", metadata={"sku": "b1"})
    assert fixed["object"] == "payment_link" and fixed["active"] is True
    assert fixed["url"].endswith(f"/pay/link/{fixed['id']}") and fixed["amount"] == 1500
    lines = make_link(links_client, h, amount=None, line_items=[
        {"description": "Mug", "quantity": 2, "unit_amount": 800},
        {"description": "Beans", "quantity": 1, "unit_amount": 1200}])
    assert lines["amount"] == 2800 and [x["amount"] for x in lines["line_items"]] == [1600, 1200]
    custom = make_link(links_client, h, amount=None,
                       custom_amount={"minimum": 100, "maximum": 10_000, "preset": 500})
    assert custom["amount"] is None and custom["custom_amount"]["preset"] == 500
    assert [e.data["object"]["id"] for e in events_of(deps, "payment_link.created")] == [
        fixed["id"], lines["id"], custom["id"]]
    # deactivate / reactivate: payment_link.updated each time, nothing when unchanged
    for active in (False, False, True):
        r = links_client.post(f"{LINKS}/{fixed['id']}", json={"active": active}, headers=h)
        assert r.status_code == 200 and r.get_json()["active"] is active
    assert len(events_of(deps, "payment_link.updated")) == 2
    lst = links_client.get(f"{LINKS}?active=true", headers=h).get_json()
    assert [x["id"] for x in lst["data"]] == [custom["id"], lines["id"], fixed["id"]]


def test_checkout_is_one_intent_per_client_key(deps, links_client, payments, make_merchant,
                                              payer):
    m = make_merchant(("owner",))
    link = make_link(links_client, m.headers(), payment_method_types=["wallet"])
    r = checkout(links_client, link["id"], customer_email="V@Example.com")
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    assert first["amount"] == 1500 and first["currency"] == "USD" and first["livemode"] is False
    assert first["client_secret"].startswith(first["payment_intent"] + "_secret_")
    # the same key (another address, no Idempotency-Key): the same intent and secret
    again = checkout(links_client, link["id"], ip="198.51.100.7").get_json()
    assert again == first
    # another key: another intent
    other = links_client.post(f"{LINKS}/{link['id']}/intents",
                              json={"client_key": "visit-other-000000000"}).get_json()
    assert other["payment_intent"] != first["payment_intent"]
    pi = payments.get(f"/v1/payment_intents/{first['payment_intent']}",
                      headers=m.headers()).get_json()
    assert pi["metadata"] == {"payment_link": link["id"]} and pi["payment_method_types"] == ["wallet"]
    assert pi["customer_email"] == "v@example.com"
    # the secret is sealed at rest, never stored plain
    rec = deps.db.collection(links.CHECKOUTS).document(first["payment_intent"]).get().to_dict()
    assert first["client_secret"] not in str(rec) and rec["expires_at"]
    # the visitor pays it from a wallet
    uid, ph = payer
    fund(deps, uid, 5000)
    r = payments.post(f"/v1/payment_intents/{first['payment_intent']}/pay",
                      json={"client_secret": first["client_secret"]}, headers=ph)
    assert r.status_code == 200 and r.get_json()["status"] == "succeeded"
    # a repeat after payment shows the paid intent, no new one
    paid = checkout(links_client, link["id"]).get_json()
    assert paid["payment_intent"] == first["payment_intent"] and paid["status"] == "succeeded"
    n = [d for d in deps.db.collection("payment_intents").stream()
         if (d.to_dict().get("metadata") or {}).get("payment_link") == link["id"]]
    assert len(n) == 2


def test_custom_amounts_and_refusals(deps, links_client, make_merchant):
    m = make_merchant(("owner",))
    custom = make_link(links_client, m.headers(), amount=None,
                       custom_amount={"minimum": 100, "maximum": 10_000})
    r = checkout(links_client, custom["id"])
    assert r.status_code == 400 and err(r)["code"] == "parameter_missing"
    for amount in (99, 10_001):
        r = checkout(links_client, custom["id"], amount=amount)
        assert r.status_code == 400 and err(r)["code"] == "amount_out_of_range"
    for amount in (1.5, "100", True, -1, 2**63):
        r = checkout(links_client, custom["id"], amount=amount)
        assert r.status_code == 400, amount
    r = checkout(links_client, custom["id"], amount=2500)
    assert r.status_code == 201 and r.get_json()["amount"] == 2500
    # the same key with another amount: refused, the first intent kept
    r = checkout(links_client, custom["id"], amount=2600)
    assert r.status_code == 409 and err(r)["code"] == "client_key_reused"
    fixed = make_link(links_client, m.headers())
    r = checkout(links_client, fixed["id"], amount=1)
    assert r.status_code == 400 and err(r)["param"] == "amount"
    # inactive, missing, malformed, unknown fields
    links_client.post(f"{LINKS}/{fixed['id']}", json={"active": False}, headers=m.headers())
    r = checkout(links_client, fixed["id"])
    assert r.status_code == 404 and err(r)["code"] == "resource_missing"
    for bad in ("plink_doesnotexist000", "in_notalink00000000", "plink_.."):
        assert checkout(links_client, bad).status_code == 404, bad
    r = links_client.post(f"{LINKS}/{custom['id']}/intents",
                          json={"client_key": KEY, "amount": 500, "tenant": m.id})
    assert r.status_code == 400 and err(r)["code"] == "parameter_unknown"
    r = links_client.post(f"{LINKS}/{custom['id']}/intents", json={"client_key": "short"})
    assert r.status_code == 400
    # a currency the merchant stopped accepting: 400, nothing made
    deps.db.collection("merchant_settings").document(m.id).set(
        {"merchant_id": m.id, "accepted_assets": ["KHR"]})
    r = checkout(links_client, custom["id"], amount=500, client_key="visit-new-0000000000")
    assert r.status_code == 400 and err(r)["code"] == "currency_not_accepted"


def test_checkout_is_rate_limited_per_address(deps, links_client):
    # a frozen clock mid-window: a fixed window cannot roll over during the test
    deps.clock = FrozenClock(dt.datetime(2026, 12, 2, 10, 0, 5, tzinfo=dt.UTC))
    ip = "192.0.2.77"
    codes = [checkout(links_client, "plink_doesnotexist000", ip=ip).status_code
             for _ in range(CHECKOUT_IP.limit + 1)]
    assert codes[:-1] == [404] * CHECKOUT_IP.limit and codes[-1] == 429
    assert checkout(links_client, "plink_doesnotexist000", ip="192.0.2.78").status_code == 404


def test_live_link_makes_live_intents_and_modes_are_isolated(deps, links_client, payments,
                                                            merchant, make_merchant, api_key):
    live = make_link(links_client, merchant.headers(live=True))
    assert live["livemode"] is True
    co = checkout(links_client, live["id"]).get_json()
    assert co["livemode"] is True
    pi = payments.get(f"/v1/payment_intents/{co['payment_intent']}",
                      headers=merchant.headers(live=True)).get_json()
    assert pi["livemode"] is True and pi["merchant"] == merchant.id
    assert payments.get(f"/v1/payment_intents/{co['payment_intent']}",
                        headers=merchant.headers()).status_code == 404
    other = make_merchant(("owner",))
    path = f"{LINKS}/{live['id']}"
    for h in (merchant.headers(), other.headers(live=True), other.headers(),
              {"Authorization": f"Bearer {api_key(merchant.id)}"}):
        assert links_client.get(path, headers=h).status_code == 404
        assert links_client.post(path, json={"active": False}, headers=h).status_code == 404
        assert links_client.get(f"{path}/button", headers=h).status_code == 404
    live_key = api_key(merchant.id, livemode=True)
    assert links_client.get(path, headers={"Authorization": f"Bearer {live_key}"}).status_code == 200
    r = links_client.post(LINKS, json={"currency": "USD", "amount": 1},
                          headers=merchant.headers("viewer"))
    assert r.status_code == 403 and err(r)["code"] == "insufficient_role"
    assert links_client.get(LINKS).status_code == 401


def test_button_snippet_is_escaped(deps, links_client, merchant):
    link = make_link(links_client, merchant.headers(),
                     description='Tea"><script>alert(1)</script>')
    r = links_client.get(f"{LINKS}/{link['id']}/button", headers=merchant.headers("viewer"))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["object"] == "payment_link_button" and body["payment_link"] == link["id"]
    html = body["html"]
    assert f'href="{link["url"]}"' in html and ">Pay 15.00 USD</a>" in html
    assert "<script" not in html and "&lt;script&gt;" in html
    r = links_client.get(f"{LINKS}/{link['id']}/button",
                         query_string={"label": "<img src=x onerror=alert(1)>"},
                         headers=merchant.headers("viewer"))
    html = r.get_json()["html"]
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;</a>" in html
    r = links_client.get(f"{LINKS}/{link['id']}/button", query_string={"label": "x" * 61},
                         headers=merchant.headers())
    assert r.status_code == 400
