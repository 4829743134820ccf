"""Webhooks (deliveries and attempts on the endpoint and payment pages, the replay button),
API keys (create, roll and revoke with confirmation; the secret shown once and working),
invoices and payment links (with return URLs checked as the API does), settlement reports
(page, CSV and JSON downloads), analytics."""
from __future__ import annotations

import csv
import html
import io
import json
import re
import urllib.parse

import pytest

from shared.identity.apikeys.service import authenticate_api_key
from shared.invoices import invoices, links
from shared.invoices.models import InvoiceListQuery, LinkListQuery
from shared.payments import intents
from shared.platform.errors import AuthenticationError
from shared.platform.uow import UnitOfWork
from tests.dashboard.conftest import (
    ROOT,
    delivered,
    endpoint_of,
    fan_out_events_of,
    open_intent,
    owner_principal,
    paid_intent,
    text,
)


def test_payment_timeline_shows_attempts_and_replays_a_webhook(wiring, member, shop, payer,
                                                               receiver, inprocess_gateway):
    ep = endpoint_of(wiring, shop, f"{receiver.base_url}/shop")
    paid = paid_intent(wiring, shop, payer, 1500)
    events = fan_out_events_of(wiring, paid.id)
    succeeded = next(e for e in events
                     if wiring.db.collection("events").document(e).get().get("type")
                     == "payment_intent.succeeded")
    delivered(wiring, succeeded, ep.id)
    dev = member("developer")
    page = text(dev.get(f"/payments/{paid.id}"))
    assert ep.id in page and "HTTP 200" in page and f"Replay {succeeded} to {ep.id}" in page
    r = dev.post(f"/webhooks/{ep.id}/replay", {"event": succeeded, "back": paid.id})
    assert r.status_code == 303 and r.headers["Location"].startswith(f"{ROOT}/payments/{paid.id}?done=replayed")
    delivered(wiring, succeeded, ep.id, run=2)
    got = [m for m in receiver.inbox("/shop") if m["headers"].get("webhook-id") == succeeded]
    assert len(got) == 2                       # the same webhook-id twice: the receiver dedupes
    endpoint_page = text(dev.get(f"/webhooks/{ep.id}"))
    assert succeeded in endpoint_page and "2.1" in endpoint_page
    assert ep.id in text(dev.get("/webhooks"))


def test_replay_needs_the_developer_role_and_an_own_endpoint(wiring, member, make_merchant, shop,
                                                             payer, receiver):
    ep = endpoint_of(wiring, shop, f"{receiver.base_url}/shop")
    paid = paid_intent(wiring, shop, payer, 1500)
    [event, *_] = fan_out_events_of(wiring, paid.id)
    support = member("support")
    page = text(support.get(f"/webhooks/{ep.id}"))
    assert "/replay" not in page and "Send a test event" not in page
    r = support.post(f"/webhooks/{ep.id}/replay", {"event": event})
    assert r.status_code == 403
    other = make_merchant(("owner", "developer"))
    theirs = endpoint_of(wiring, other, f"{receiver.base_url}/other")
    dev = member("developer")
    assert dev.get(f"/webhooks/{theirs.id}").status_code == 404
    assert dev.post(f"/webhooks/{theirs.id}/replay", {"event": event}).status_code == 404
    assert dev.post(f"/webhooks/{ep.id}/replay", {"event": "evt_nope"}).status_code == 404
    assert dev.post(f"/webhooks/{ep.id}/replay", {"event": "../x"}).status_code == 404
    live = endpoint_of(wiring, shop, f"{receiver.base_url}/live", livemode=True)
    assert dev.get(f"/webhooks/{live.id}").status_code == 404          # the other mode
    assert theirs.id not in text(dev.get("/webhooks")) and live.id not in text(dev.get("/webhooks"))


def _project(b):
    r = b.post("/projects", {"name": "Checkout"})
    assert r.status_code == 303, text(r)


def test_keys_create_roll_and_revoke_with_the_secret_shown_once(wiring, member, shop):
    admin = member("admin")
    _project(admin)
    dev = member("developer")
    page = text(dev.get("/keys"))
    project_id = re.search(r'<option value="(prj_\w+)">Checkout</option>', page).group(1)
    made = dev.post("/keys", {"project": project_id, "name": "server",
                              "scopes": ["payments:read", "payments:write"]})
    assert made.status_code == 303 and made.headers["Location"] == f"{ROOT}/keys/secret"
    assert "sk_test_" not in text(made)                                # POST-redirect-GET
    shown = dev.get("/keys/secret")
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="secret">(sk_test_[^<]+)<', text(shown)).group(1)
    assert authenticate_api_key(wiring, secret).tenant_id == shop.id
    again = dev.get("/keys/secret")                                    # a reload
    assert "Secret already shown" in text(again) and "sk_test_" not in text(again)
    listing = text(dev.get("/keys"))
    assert "server" in listing and secret not in listing               # never shown again
    key_id = re.search(r'action="/dashboard/keys/(key_\w+)/roll"', listing).group(1)
    ask = dev.post(f"/keys/{key_id}/roll", {"grace": "0"})
    assert ask.status_code == 200 and "Roll the key server?" in text(ask)
    assert authenticate_api_key(wiring, secret).id == key_id           # nothing happened yet
    rolled = dev.post(f"/keys/{key_id}/roll", {"grace": "0", "confirm": "yes"})
    assert rolled.status_code == 303
    shown = text(dev.get("/keys/secret"))
    new_secret = re.search(r'id="secret">(sk_test_[^<]+)<', shown).group(1)
    assert "Replaces" in shown and key_id in shown
    assert new_secret != secret and authenticate_api_key(wiring, new_secret).tenant_id == shop.id
    with pytest.raises(AuthenticationError):
        authenticate_api_key(wiring, secret)
    new_id = authenticate_api_key(wiring, new_secret).id
    ask = dev.post(f"/keys/{new_id}/revoke", {})
    assert ask.status_code == 200 and "cannot be undone" in text(ask)
    r = dev.post(f"/keys/{new_id}/revoke", {"confirm": "yes"})
    assert r.status_code == 303 and "done=revoked" in r.headers["Location"]
    with pytest.raises(AuthenticationError):
        authenticate_api_key(wiring, new_secret)


def test_keys_are_refused_below_developer_and_across_merchants_and_modes(wiring, member,
                                                                        make_merchant, shop):
    admin = member("admin")
    _project(admin)
    page = text(admin.get("/keys"))
    project_id = re.search(r'<option value="(prj_\w+)">', page).group(1)
    assert admin.post("/keys", {"project": project_id, "scopes": ["payments:read"]}).status_code == 303
    key_id = re.search(r'action="/dashboard/keys/(key_\w+)/roll"', text(admin.get("/keys"))).group(1)
    support = member("support")
    assert support.get("/keys").status_code == 403
    assert support.post(f"/keys/{key_id}/roll", {"confirm": "yes"}).status_code == 403
    assert support.post(f"/keys/{key_id}/revoke", {"confirm": "yes"}).status_code == 403
    assert support.post("/keys", {"project": project_id, "scopes": ["payments:read"]}).status_code == 403
    dev = member("developer")
    assert dev.post("/projects", {"name": "Nope"}).status_code == 403   # projects: admin+
    other = make_merchant(("owner",))
    outsider = member("owner", merchant=other)
    assert outsider.post(f"/keys/{key_id}/revoke", {"confirm": "yes"}).status_code == 404
    assert outsider.post("/keys", {"project": project_id, "scopes": ["payments:read"]}).status_code == 404
    admin.post("/mode", {"mode": "live"})
    assert admin.post(f"/keys/{key_id}/revoke", {"confirm": "yes"}).status_code == 404
    assert key_id not in text(admin.get("/keys"))
    bad = member("developer").post("/keys", {"project": project_id, "scopes": []})
    assert bad.status_code == 400 and 'role="alert"' in text(bad)


def test_invoices_and_payment_links(wiring, member, shop):
    dev = member("developer")
    page = text(dev.get("/invoices"))
    idem = re.search(r'name="idem" value="([^"]+)"', page).group(1)
    form = {"idem": idem, "email": "buyer@example.com", "customer_name": "Buyer",
            "currency": "USD", "description": "Consulting", "quantity": "2", "unit_amount": "12.50"}
    r = dev.post("/invoices", form)
    assert r.status_code == 303
    again = dev.post("/invoices", form)                     # a resubmitted form: the same draft
    assert again.headers["Location"] == r.headers["Location"]
    listing = text(dev.get("/invoices"))
    assert listing.count("buyer@example.com") == 1 and "25.00 USD" in listing
    invoice_id = re.search(r'action="/dashboard/invoices/(in_\w+)/finalize"', listing).group(1)
    r = dev.post(f"/invoices/{invoice_id}/finalize", {})
    assert r.status_code == 303 and "invoice_finalized" in r.headers["Location"]
    listing = text(dev.get("/invoices?status=open"))
    assert invoice_id in listing and "/dashboard/payments/pi_" in listing
    bad = dev.post("/invoices", {**form, "idem": "z" * 20, "email": "not-an-email"})
    assert bad.status_code == 400 and 'role="alert"' in text(bad) and 'value="Consulting"' in text(bad)

    page = text(dev.get("/links"))
    idem = re.search(r'name="idem" value="([^"]+)"', page).group(1)
    r = dev.post("/links", {"idem": idem, "currency": "USD", "amount": "9.99", "description": "Tea"})
    assert r.status_code == 303
    listing = text(dev.get("/links"))
    assert "9.99 USD" in listing and "Tea" in listing
    link_id = re.search(r'action="/dashboard/links/(plink_\w+)/active"', listing).group(1)
    ask = dev.post(f"/links/{link_id}/active", {"active": "false"})
    assert ask.status_code == 200 and "Turn off the payment link" in text(ask)
    r = dev.post(f"/links/{link_id}/active", {"active": "false", "confirm": "yes"})
    assert r.status_code == 303 and "link_off" in r.headers["Location"]
    assert "inactive" in text(dev.get("/links"))
    viewer = member("viewer")
    assert 'action="/dashboard/links"' not in text(viewer.get("/links"))
    assert viewer.post("/links", {"idem": "q" * 20, "currency": "USD", "amount": "1"}).status_code == 403
    assert viewer.post(f"/invoices/{invoice_id}/finalize", {}).status_code == 403


def _made(resp) -> str:
    assert resp.status_code == 303, text(resp)[:500]
    return urllib.parse.parse_qs(urllib.parse.urlsplit(resp.headers["Location"]).query)["ref"][0]


def _alert(resp) -> str:
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', text(resp), re.DOTALL)
    return html.unescape(found.group(1)) if found else ""


def _idem(b, path: str) -> str:
    return re.search(r'name="idem" value="([^"]+)"', text(b.get(path))).group(1)


def test_invoices_and_links_take_return_urls_checked_as_the_api_does(wiring, member, shop):
    dev = member("developer")
    page = text(dev.get("/invoices"))
    assert 'name="success_url"' in page and 'name="cancel_url"' in page and "Success URL" in page
    success = "https://shop.example/thanks?order={PAYMENT_INTENT_ID}"
    form = {"idem": _idem(dev, "/invoices"), "email": "buyer@example.com", "currency": "USD",
            "description": "Consulting", "unit_amount": "5", "success_url": success,
            "cancel_url": "https://shop.example/cart"}
    invoice_id = _made(dev.post("/invoices", form))
    stored = invoices.retrieve(UnitOfWork(wiring), owner_principal(shop), invoice_id)
    assert (stored.success_url, stored.cancel_url) == (success, "https://shop.example/cart")
    r = dev.post(f"/invoices/{invoice_id}/finalize", {})     # the intent carries them on
    assert r.status_code == 303
    pi = invoices.retrieve(UnitOfWork(wiring), owner_principal(shop), invoice_id).payment_intent
    intent = intents.retrieve(UnitOfWork(wiring), owner_principal(shop), pi)
    assert (intent.success_url, intent.cancel_url) == (success, "https://shop.example/cart")

    link_id = _made(dev.post("/links", {"idem": _idem(dev, "/links"), "currency": "USD",
                                        "amount": "3", "cancel_url": "http://localhost:3000/cart"}))
    link = links.retrieve(UnitOfWork(wiring), owner_principal(shop), link_id)
    assert (link.success_url, link.cancel_url) == (None, "http://localhost:3000/cart")  # test mode
    plain = _made(dev.post("/links", {"idem": _idem(dev, "/links"), "currency": "USD",
                                      "amount": "4", "success_url": "", "cancel_url": " "}))
    link = links.retrieve(UnitOfWork(wiring), owner_principal(shop), plain)
    assert (link.success_url, link.cancel_url) == (None, None)     # empty: the branding defaults

    # a URL the API refuses is a form error with what was typed kept, and nothing is made
    before = len(invoices.list_invoices(wiring, owner_principal(shop),
                                        InvoiceListQuery(limit=100)).data)
    for bad_url, field in (("http://shop.example/thanks", "success_url"),
                           ("javascript:alert(1)", "cancel_url"),
                           ("https://user:pw@shop.example/", "success_url"),
                           ("https://shop.example/" + "a" * 2000, "cancel_url")):
        bad = dev.post("/invoices", {**form, "idem": _idem(dev, "/invoices"), field: bad_url})
        assert bad.status_code == 400, (bad_url, text(bad)[:300])
        assert field in _alert(bad) and 'value="Consulting"' in text(bad)
        assert html.escape(bad_url[:2000]) in text(bad)
        bad = dev.post("/links", {"idem": _idem(dev, "/links"), "currency": "USD", "amount": "2",
                                  "description": "Kept", field: bad_url})
        assert bad.status_code == 400 and field in _alert(bad), (bad_url, text(bad)[:300])
        assert 'value="Kept"' in text(bad)
    after = invoices.list_invoices(wiring, owner_principal(shop), InvoiceListQuery(limit=100)).data
    assert len(after) == before
    assert not any(l.description == "Kept" for l in links.list_links(
        wiring, owner_principal(shop), LinkListQuery(limit=100)).data)

    # live mode never sends a payer to plain http, not even localhost
    dev.post("/mode", {"mode": "live"})
    bad = dev.post("/links", {"idem": _idem(dev, "/links"), "currency": "USD", "amount": "2",
                              "success_url": "http://localhost:3000/thanks"})
    assert bad.status_code == 400 and "live mode" in _alert(bad)
    live = _made(dev.post("/links", {"idem": _idem(dev, "/links"), "currency": "USD",
                                     "amount": "2", "success_url": "https://shop.example/ok"}))
    assert links.retrieve(UnitOfWork(wiring), owner_principal(shop, livemode=True),
                          live).success_url == "https://shop.example/ok"


def test_settlement_report_page_and_downloads(wiring, member, shop, payer):
    paid = paid_intent(wiring, shop, payer, 2000)
    b = member("viewer")
    page = text(b.get("/reports"))
    assert "Download CSV" in page and paid.id in page
    day = re.search(r'settlements\.csv\?date=(\d{4}-\d{2}-\d{2})', page).group(1)
    r = b.get(f"/reports/settlements.csv?date={day}")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == f'attachment; filename="settlements-{shop.id}-test-{day}.csv"'
    rows = list(csv.DictReader(io.StringIO(text(r))))
    assert any(row.get("payment_intent") == paid.id for row in rows)
    j = b.get(f"/reports/settlements.json?date={day}")
    body = json.loads(text(j))
    assert body["object"] == "settlement_report" and body["merchant"] == shop.id
    assert body["livemode"] is False
    bad = b.get("/reports?date=2026-02-30")
    assert bad.status_code == 400 and "calendar date" in text(bad)
    assert b.get("/reports/settlements.csv?date=nope").status_code == 400
    b.post("/mode", {"mode": "live"})
    live = json.loads(text(b.get(f"/reports/settlements.json?date={day}")))
    assert live["livemode"] is True and paid.id not in json.dumps(live)


def test_analytics_embeds_the_chart_data(wiring, member, shop, payer):
    paid_intent(wiring, shop, payer, 3000)
    open_intent(wiring, shop, 100)
    page = text(member("viewer").get("/analytics"))
    data = json.loads(re.search(r'<script type="application/json" id="analytics-data">(.*?)</script>',
                                page, re.DOTALL).group(1))
    [usd] = [a for a in data["assets"] if a["asset"] == "USD"]
    assert "30.00" in usd["volume"] and 50.0 in usd["conversion"]
    assert "vendor/chart.umd.min.js?v=" in page and "analytics.js?v=" in page
    bad = member("viewer").get("/analytics?from=2026-01-01&to=2025-01-01")
    assert bad.status_code == 400


def test_an_invoice_detail_of_another_merchant_cannot_be_finalized(wiring, member, make_merchant):
    from shared.invoices import invoices
    from shared.invoices.models import CreateInvoice
    from shared.platform.uow import run_unit
    other = make_merchant(("owner",))
    theirs = run_unit(wiring, lambda uow: invoices.create(uow, owner_principal(other), CreateInvoice(
        customer={"email": "x@example.com"}, currency="USD",
        lines=[{"description": "x", "quantity": 1, "unit_amount": 100}]), None))
    r = member("developer").post(f"/invoices/{theirs.id}/finalize", {})
    assert r.status_code == 404
