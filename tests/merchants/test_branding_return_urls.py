"""``success_url`` / ``cancel_url`` as fields of payment intents, invoices and payment links
(through their functions), checked for the object's mode, shown on the resource, carried to
the intents invoices and links create, and preferred by the hosted page over the merchant's
branding defaults."""
from __future__ import annotations

import pytest

from shared.adapters.kms import LocalKms
from shared.merchants import branding
from shared.platform.uow import run_unit
from tests.payments.conftest import Merchant, api_key, err, make_merchant  # noqa: F401  (fixtures)
from tests.support.identity import auth_headers

THANKS = "https://shop.example/thanks?order={PAYMENT_INTENT_ID}"
CART = "https://shop.example/cart"


@pytest.fixture
def kms(deps):
    deps.extras["platform.kms"] = LocalKms.generate()      # invoices and links seal secrets
    return deps


@pytest.fixture
def clients(function_client):
    return {name: function_client(name) for name in ("payments", "invoices", "payment_links",
                                                    "checkout")}


@pytest.fixture
def shop(make_merchant, api_key):   # noqa: F811
    m = make_merchant(("owner",))
    return m, {live: auth_headers(api_key(m.id, livemode=live)) for live in (False, True)}


def _intent(clients, headers, **fields):
    return clients["payments"].post("/v1/payment_intents", json={"amount": 1000, "currency": "USD",
                                                                 **fields}, headers=headers)


def test_an_intent_carries_its_own_urls_and_the_page_prefers_them(deps, clients, shop):
    m, keys = shop
    run_unit(deps, lambda uow: branding.update_branding(uow, m.id, branding.UpdateBranding(
        success_url="https://default.example/ok", cancel_url="https://default.example/back")))
    r = _intent(clients, keys[False], success_url=THANKS, cancel_url=CART)
    assert r.status_code == 201, r.get_json()
    pi = r.get_json()
    assert (pi["success_url"], pi["cancel_url"]) == (THANKS, CART)
    got = clients["payments"].get(f"/v1/payment_intents/{pi['id']}", headers=keys[False]).get_json()
    assert (got["success_url"], got["cancel_url"]) == (THANKS, CART)
    cancel = clients["checkout"].get(f"/pay/{pi['client_secret']}/cancel")
    assert cancel.status_code == 303 and cancel.headers["Location"] == CART
    assert cancel.headers["Referrer-Policy"] == "no-referrer"
    # without its own URLs an intent uses the merchant's default
    plain = _intent(clients, keys[False]).get_json()
    assert plain["success_url"] is None and plain["cancel_url"] is None
    assert clients["checkout"].get(f"/pay/{plain['client_secret']}/cancel").headers["Location"] == \
        "https://default.example/back"


def test_intent_urls_follow_the_mode(clients, shop):
    _m, keys = shop
    local = "http://localhost:3000/done"
    ok = _intent(clients, keys[False], success_url=local)
    assert ok.status_code == 201 and ok.get_json()["success_url"] == local
    for headers, url in ((keys[True], local), (keys[False], "http://shop.example/done"),
                         (keys[True], "javascript:alert(1)"), (keys[False], "https://u:p@shop.example/")):
        r = _intent(clients, headers, cancel_url=url)
        assert r.status_code == 400 and err(r)["code"] == "url_invalid" and err(r)["param"] == "cancel_url"
    long = _intent(clients, keys[False], success_url="https://shop.example/" + "x" * 2000)
    assert long.status_code == 400 and err(long)["param"] == "success_url"


def test_a_live_intent_never_goes_to_an_http_default(deps, clients, shop):
    m, keys = shop
    run_unit(deps, lambda uow: branding.update_branding(uow, m.id, branding.UpdateBranding(
        cancel_url="http://localhost:3000/back")))
    live = _intent(clients, keys[True]).get_json()
    r = clients["checkout"].get(f"/pay/{live['client_secret']}/cancel")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/pay/{live['client_secret']}")
    test = _intent(clients, keys[False]).get_json()
    assert clients["checkout"].get(f"/pay/{test['client_secret']}/cancel").headers["Location"] == \
        "http://localhost:3000/back"


def test_invoices_pass_their_urls_to_their_intent(kms, clients, shop):
    _m, keys = shop
    inv = clients["invoices"].post("/v1/invoices", headers=keys[False], json={
        "customer": {"email": "ann@example.com"}, "currency": "USD",
        "lines": [{"description": "Tea", "quantity": 1, "unit_amount": 500}],
        "success_url": THANKS, "cancel_url": "http://localhost/cart"})
    assert inv.status_code == 201, inv.get_json()
    assert (inv.get_json()["success_url"], inv.get_json()["cancel_url"]) == (THANKS, "http://localhost/cart")
    iid = inv.get_json()["id"]
    changed = clients["invoices"].post(f"/v1/invoices/{iid}", headers=keys[False],
                                       json={"cancel_url": CART})
    assert changed.status_code == 200 and changed.get_json()["cancel_url"] == CART
    bad = clients["invoices"].post(f"/v1/invoices/{iid}", headers=keys[False],
                                   json={"success_url": "http://shop.example/x"})
    assert bad.status_code == 400 and err(bad)["code"] == "url_invalid"
    done = clients["invoices"].post(f"/v1/invoices/{iid}/finalize", headers=keys[False])
    assert done.status_code == 200, done.get_json()
    pi = clients["payments"].get(f"/v1/payment_intents/{done.get_json()['payment_intent']}",
                                 headers=keys[False]).get_json()
    assert (pi["success_url"], pi["cancel_url"]) == (THANKS, CART)
    r = clients["checkout"].get(f"/pay/invoice/{iid}/cancel")
    assert r.headers["Location"] == CART
    live = clients["invoices"].post("/v1/invoices", headers=keys[True], json={
        "customer": {"email": "ann@example.com"}, "currency": "USD",
        "cancel_url": "http://localhost/cart"})
    assert live.status_code == 400 and err(live)["code"] == "url_invalid"


def test_payment_links_pass_their_urls_to_each_visitors_intent(kms, clients, shop):
    _m, keys = shop
    r = clients["payment_links"].post("/v1/payment_links", headers=keys[False], json={
        "currency": "USD", "amount": 900, "success_url": THANKS})
    assert r.status_code == 201, r.get_json()
    link = r.get_json()
    assert link["success_url"] == THANKS and link["cancel_url"] is None
    upd = clients["payment_links"].post(f"/v1/payment_links/{link['id']}", headers=keys[False],
                                        json={"cancel_url": CART})
    assert upd.status_code == 200 and upd.get_json()["cancel_url"] == CART
    bad = clients["payment_links"].post(f"/v1/payment_links/{link['id']}", headers=keys[False],
                                        json={"cancel_url": "ftp://shop.example/"})
    assert bad.status_code == 400 and err(bad)["code"] == "url_invalid"
    visit = clients["payment_links"].post(f"/v1/payment_links/{link['id']}/intents",
                                          json={"client_key": "k" * 24})
    assert visit.status_code == 201, visit.get_json()
    secret = visit.get_json()["client_secret"]
    pi = clients["payments"].get(f"/v1/payment_intents/{visit.get_json()['payment_intent']}",
                                 headers=keys[False]).get_json()
    assert (pi["success_url"], pi["cancel_url"]) == (THANKS, CART)
    assert clients["checkout"].get(f"/pay/{secret}/cancel").headers["Location"] == CART
    live = clients["payment_links"].post("/v1/payment_links", headers=keys[True], json={
        "currency": "USD", "amount": 900, "success_url": "http://127.0.0.1/ok"})
    assert live.status_code == 400 and err(live)["param"] == "success_url"
