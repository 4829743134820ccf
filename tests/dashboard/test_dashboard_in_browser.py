"""The dashboard in a real browser (Debian Chromium through Playwright) on the in-process gateway:
sign in, find the payment, refund it, replay a webhook, roll a key, look at the analytics
charts, read it in Khmer, sign out. Every page is checked with axe-core (no serious or critical
violation), keeps the strict CSP (no violation, no console error) and is saved as a screenshot
under test-artifacts/screenshots/."""
from __future__ import annotations

import re

from shared.identity.apikeys.service import authenticate_api_key
from shared.merchants import keys, projects
from shared.merchants.models import CreateProject, CreateProjectKey
from shared.platform.uow import run_unit
from shared.refunds import service as refunds
from shared.refunds.models import RefundListQuery
from tests.dashboard.conftest import (
    delivered,
    email_of,
    endpoint_of,
    fan_out_events_of,
    owner_principal,
    paid_intent,
)
from tests.support.browser import axe_violations, screenshot
from tests.support.identity import DEFAULT_PASSWORD


def _checked(page, name: str):
    """Accessibility and CSP checks of the page as it is now, and its screenshot; on a phone's
    width nothing but the tables' own scroll areas may overflow."""
    assert axe_violations(page) == [], name
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), name
    assert page.problems == [], (name, page.problems)
    assert screenshot(page, name).stat().st_size > 5000


def test_sign_in_find_refund_replay_roll_and_charts(wiring, shop, payer, receiver,
                                                    inprocess_gateway, browser_page):
    ep = endpoint_of(wiring, shop, f"{receiver.base_url}/shop")
    paid_intent(wiring, shop, payer, 900, email="other@example.com")
    paid = paid_intent(wiring, shop, payer, 4200, email="dara@example.com", description="Lunch")
    succeeded = next(e for e in fan_out_events_of(wiring, paid.id)
                     if wiring.db.collection("events").document(e).get().get("type")
                     == "payment_intent.succeeded")
    delivered(wiring, succeeded, ep.id, run=1)
    project = run_unit(wiring, lambda uow: projects.create_project(
        uow, owner_principal(shop), shop.id, CreateProject(name="Web shop")))
    old_key = run_unit(wiring, lambda uow: keys.create_key(
        uow, owner_principal(shop), shop.id, project.id,
        CreateProjectKey(name="backend", scopes=["payments:read"])))

    page, base = browser_page, f"{inprocess_gateway}/dashboard"
    # 1. a stranger is sent to sign in, then back to the page asked for
    page.goto(f"{base}/payments")
    page.wait_for_url("**/dashboard/signin?next=*")
    _checked(page, "01-signin")
    page.fill("#email", email_of(wiring, shop.users["owner"][0]))
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button[type=submit] >> text=Sign in")
    page.wait_for_url("**/dashboard/payments")
    http_only = {c["name"]: c for c in page.context.cookies()}
    assert http_only["dash_at"]["httpOnly"] and http_only["dash_at"]["sameSite"] == "Strict"
    assert page.evaluate("() => document.cookie").find("dash_") == -1   # no script can read them
    _checked(page, "02-payments")

    # 2. find the payment by the customer's email
    page.fill("#f-email", "dara@example.com")
    page.click("form[aria-label='Filter payments'] button[type=submit]")
    page.wait_for_url("**email=dara*")
    rows = page.locator("tbody tr")
    assert rows.count() == 1 and paid.id in rows.inner_text()
    page.click(f"a:text('{paid.id}')")
    page.wait_for_url(f"**/payments/{paid.id}")
    assert "42.00 USD" in page.inner_text("main") and "HTTP 200" in page.inner_text("#events")
    _checked(page, "03-payment")

    # 3. refund it: a confirmation page, then the refund
    page.fill("#refund-amount", "12.00")
    page.select_option("#refund-reason", "requested_by_customer")
    page.click("#refund-start")
    page.wait_for_selector("#confirm")
    assert "Refund 12.00 USD?" in page.inner_text("h1")
    _checked(page, "04-refund-confirm")
    page.click("#confirm")
    page.wait_for_url("**done=refunded*")
    assert "created" in page.inner_text("[role=status]")
    [made] = refunds.list_refunds(wiring, owner_principal(shop),
                                  RefundListQuery(payment_intent=paid.id)).data
    assert made.amount == 1200 and made.status == "succeeded"
    _checked(page, "05-refunded")

    # 4. replay the succeeded event's webhook from the payment's timeline
    page.click(f"button[aria-label='Replay {succeeded} to {ep.id}']")
    page.wait_for_url("**done=replayed*")
    delivered(wiring, succeeded, ep.id, run=2)
    assert len([m for m in receiver.inbox("/shop")
                if m["headers"].get("webhook-id") == succeeded]) == 2
    page.goto(f"{base}/webhooks/{ep.id}")
    _checked(page, "06-endpoint")

    # 5. roll the key: confirm, then the new secret shown once
    page.goto(f"{base}/keys")
    _checked(page, "07-keys")
    page.select_option(f"#grace-{old_key.id}", "3600")
    page.click("button[aria-label='Roll backend']")
    page.wait_for_selector("#confirm")
    page.click("#confirm")
    page.wait_for_selector("#secret")
    secret = page.inner_text("#secret").strip()
    assert re.fullmatch(r"sk_test_\S+", secret) and secret != old_key.secret
    assert authenticate_api_key(wiring, secret).tenant_id == shop.id
    assert authenticate_api_key(wiring, old_key.secret)   # the grace hour chosen above
    _checked(page, "08-key-rolled")
    page.goto(f"{base}/keys")
    assert secret not in page.content()

    # 6. analytics: Chart.js from our own static files draws both charts under the CSP
    page.goto(f"{base}/analytics")
    page.wait_for_function("() => document.documentElement.dataset.charts === '1'")
    assert page.evaluate("() => typeof Chart") == "function"
    assert page.evaluate("() => Chart.getChart('volume-chart').data.datasets[0].data.length") >= 1
    _checked(page, "09-analytics")
    page.goto(f"{base}/reports")
    _checked(page, "10-reports")

    # 7. in Khmer, then the live mode switch and sign-out
    page.goto(f"{base}/payments/{paid.id}?lang=km")
    assert page.get_attribute("html", "lang") == "km"
    assert "ការទូទាត់" in page.inner_text("main")
    _checked(page, "11-payment-km")
    page.goto(f"{base}/payments?lang=en")
    page.click("#mode-switch")
    page.wait_for_url("**/dashboard/payments")
    assert "Live mode" in page.inner_text("header") and paid.id not in page.inner_text("main")
    _checked(page, "12-live-mode")
    page.click("header button >> text=Sign out")
    page.wait_for_url("**/signin?signed_out=1")
    page.goto(f"{base}/payments")
    page.wait_for_url("**/dashboard/signin?next=*")
    assert page.problems == []


def test_a_viewer_sees_no_controls_it_may_not_use(wiring, shop, payer, inprocess_gateway,
                                                  browser_page):
    paid = paid_intent(wiring, shop, payer, 1000)
    page, base = browser_page, f"{inprocess_gateway}/dashboard"
    page.goto(f"{base}/signin")
    page.fill("#email", email_of(wiring, shop.users["viewer"][0]))
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button[type=submit] >> text=Sign in")
    page.wait_for_url("**/dashboard/payments")
    page.goto(f"{base}/payments/{paid.id}")
    assert page.locator("#refund-start").count() == 0
    assert page.locator("nav.side a", has_text="API keys").count() == 0
    page.goto(f"{base}/keys")
    assert "403" in page.inner_text("main") and "developer" in page.inner_text("main")
    assert axe_violations(page) == []
    screenshot(page, "viewer-forbidden")


def test_invoice_and_link_forms_with_return_urls(wiring, shop, inprocess_gateway, browser_page):
    from shared.invoices import invoices, links
    from shared.invoices.models import InvoiceListQuery, LinkListQuery

    page, base = browser_page, f"{inprocess_gateway}/dashboard"
    page.goto(f"{base}/signin")
    page.fill("#email", email_of(wiring, shop.users["developer"][0]))
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button[type=submit] >> text=Sign in")
    page.wait_for_url("**/dashboard/payments")

    page.goto(f"{base}/invoices")
    _checked(page, "invoices")
    page.fill("#inv-email", "dara@example.com")
    page.fill("#inv-description", "Catering")
    page.fill("#inv-unit", "40")
    page.fill("#inv-success", "https://shop.example/thanks?order={PAYMENT_INTENT_ID}")
    page.fill("#inv-cancel", "https://shop.example/cart")
    page.click("form[aria-labelledby=new-invoice] button[type=submit]")
    page.wait_for_url("**done=invoice_created*")
    [made] = invoices.list_invoices(wiring, owner_principal(shop), InvoiceListQuery(limit=10)).data
    assert made.success_url == "https://shop.example/thanks?order={PAYMENT_INTENT_ID}"
    assert made.cancel_url == "https://shop.example/cart"

    page.goto(f"{base}/links")
    page.fill("#link-amount", "7.50")
    page.fill("#link-success", "http://shop.example/thanks")      # plain http: refused
    page.click("form[aria-labelledby=new-link] button[type=submit]")
    page.wait_for_selector("[role=alert]")
    assert "success_url" in page.inner_text("[role=alert]")
    assert page.input_value("#link-success") == "http://shop.example/thanks"
    assert page.input_value("#link-amount") == "7.50"
    assert len(page.problems) == 1 and "status of 400" in page.problems[0]   # the refusal itself
    page.problems.clear()
    _checked(page, "links-url-refused")
    page.fill("#link-success", "https://shop.example/thanks")
    page.click("form[aria-labelledby=new-link] button[type=submit]")
    page.wait_for_url("**done=link_created*")
    [link] = links.list_links(wiring, owner_principal(shop), LinkListQuery(limit=10)).data
    assert (link.success_url, link.cancel_url) == ("https://shop.example/thanks", None)
    page.goto(f"{base}/links?lang=km")
    assert "URL ជោគជ័យ" in page.inner_text("main")
    _checked(page, "links-km")
