"""In Chromium: an admin brands the payment page (upload, preview, save), a payer's page shows
it, and a new key's secret page survives a reload without a second key or the secret; every
page passes axe-core (serious + critical), keeps the CSP and is saved as a screenshot."""
from __future__ import annotations

from shared.merchants import keys, projects
from shared.merchants.models import CreateProject, KeyListQuery
from shared.platform.uow import run_unit
from tests.dashboard.conftest import email_of, open_intent, owner_principal
from tests.dashboard.test_dashboard_in_browser import _checked
from tests.merchants.test_branding_rules import png
from tests.support.identity import DEFAULT_PASSWORD


def _sign_in(page, base, wiring, shop, role):
    page.goto(f"{base}/signin")
    page.fill("#email", email_of(wiring, shop.users[role][0]))
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button[type=submit] >> text=Sign in")
    page.wait_for_url("**/dashboard/payments")


def test_brand_the_payment_page_and_see_it(wiring, shop, inprocess_gateway, browser_page, tmp_path):
    page, base = browser_page, f"{inprocess_gateway}/dashboard"
    _sign_in(page, base, wiring, shop, "admin")
    page.click("nav.side a >> text=Branding")
    page.wait_for_url("**/dashboard/branding")
    _checked(page, "01-branding")
    logo = tmp_path / "logo.png"
    logo.write_bytes(png(32, 32))
    page.fill("#b-name", "Angkor Coffee")
    page.set_input_files("#b-logo", str(logo))
    page.fill("#b-color", "#0b6e4f")
    page.fill("#b-success", "https://shop.example/thanks?order={PAYMENT_INTENT_ID}")
    page.fill("#b-email", "help@shop.example")
    page.click("#branding-preview")
    page.wait_for_selector("#confirm")
    assert page.evaluate("() => getComputedStyle(document.querySelector('.pv-button')).backgroundColor") \
        == "rgb(11, 110, 79)"
    assert page.evaluate("() => document.querySelector('.pv-logo').naturalWidth") == 32
    _checked(page, "02-preview")
    page.click("#confirm")
    page.wait_for_url("**/branding?done=branding_saved")
    assert "Branding saved" in page.inner_text("[role=status]")
    _checked(page, "03-saved")

    # the payer's page wears it
    pi = open_intent(wiring, shop, 1200)
    page.goto(f"{inprocess_gateway}/pay/{pi.client_secret}")
    assert page.inner_text("header .name") == "Angkor Coffee"
    assert page.evaluate("() => document.querySelector('header img.logo').naturalWidth") == 32
    button = page.locator("main button").first
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(11, 110, 79)"
    assert button.evaluate("b => getComputedStyle(b).color") == "rgb(255, 255, 255)"
    _checked(page, "04-checkout-branded")


def test_a_reloaded_secret_page_makes_no_key(wiring, shop, inprocess_gateway, browser_page):
    run_unit(wiring, lambda uow: projects.create_project(
        uow, owner_principal(shop), shop.id, CreateProject(name="Web shop")))
    page, base = browser_page, f"{inprocess_gateway}/dashboard"
    _sign_in(page, base, wiring, shop, "developer")
    page.goto(f"{base}/keys")
    page.fill("#key-name", "server")
    page.click("button >> text=Create key")
    page.wait_for_url("**/dashboard/keys/secret")
    secret = page.inner_text("#secret").strip()
    assert secret.startswith("sk_test_")
    _checked(page, "05-secret-once")
    page.reload()
    page.wait_for_selector("#secret-gone")
    assert secret not in page.content()
    _checked(page, "06-secret-gone")
    made = keys.list_keys(wiring, owner_principal(shop), shop.id, KeyListQuery(limit=10)).data
    assert [k.name for k in made] == ["server"]
