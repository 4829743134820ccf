"""The docs in Chromium through the in-process gateway: Swagger UI renders the document from
our own files under our CSP, "Try it out" calls the running stack with a real test key and
shows its 200, and the pages pass axe-core (serious and critical)."""
from __future__ import annotations

import pytest
import requests

from shared.docs import guide
from tests.support.browser import axe_violations, screenshot

LIST_INTENTS = "#operations-payments-payments_list_intents"


def _open_reference(page, base):
    page.set_viewport_size({"width": 1280, "height": 900})   # a reference is read on a desktop
    page.goto(f"{base}/docs", wait_until="commit")   # Swagger UI's 1.4 MB bundle parses slowly on a busy CI
    page.wait_for_function("() => document.documentElement.dataset.ready === '1'", timeout=120_000)
    page.click("#operations-tag-payments")   # tags start collapsed (docExpansion: none)
    page.wait_for_selector(LIST_INTENTS)


def test_reference_renders_and_try_it_out_answers_with_the_stack(inprocess_gateway, browser_page, test_key):
    page = browser_page
    _open_reference(page, inprocess_gateway)
    spec = requests.get(f"{inprocess_gateway}/docs/openapi.json", timeout=30).json()
    tags = {t for ops in spec["paths"].values() for op in ops.values() for t in op["tags"]}
    for tag in tags:
        assert page.locator(f"#operations-tag-{tag}").count() == 1, tag
    assert page.locator(".webhooks .opblock").count() == len(spec["webhooks"]) > 30
    assert "Payloom API" in page.inner_text(".info .title")
    page.screenshot(path=str(screenshot(page, "reference").with_name("reference-viewport.png")))

    _authorize(page, test_key)

    block = page.locator(LIST_INTENTS)
    block.locator(".opblock-summary-control").click()
    block.locator(".try-out__btn").click()
    block.locator("button.execute").click()
    status = block.locator(".live-responses-table .response .response-col_status")
    status.first.wait_for()
    body = block.locator(".live-responses-table .response-col_description pre").first.inner_text()
    assert status.first.inner_text().strip() == "200", body
    assert '"object": "list"' in body
    block.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot(page, "try-it-out-200").with_name("try-it-out-200-viewport.png")))
    assert axe_violations(page) == []          # the form, the curl and the live response too
    assert page.problems == []


def _authorize(page, key):
    page.click("button.authorize")
    page.fill(".modal-ux input", key)
    page.click(".modal-ux .auth-btn-wrapper button.authorize")
    page.click(".modal-ux button.btn-done")


def test_try_it_out_refuses_a_live_key_before_sending(inprocess_gateway, browser_page):
    page = browser_page
    _open_reference(page, inprocess_gateway)
    _authorize(page, "sk_live_" + "a" * 43)
    sent = []
    page.on("request", lambda r: "/v1/" in r.url and sent.append(r.url))
    block = page.locator(LIST_INTENTS)
    block.locator(".opblock-summary-control").click()
    block.locator(".try-out__btn").click()
    block.locator("button.execute").click()
    page.wait_for_timeout(1500)   # the interceptor throws synchronously; give a request time to appear
    assert sent == []
    assert block.locator(".live-responses-table .response-col_status").count() == 0 or \
        "200" not in block.locator(".live-responses-table").inner_text()


def test_reference_is_accessible(inprocess_gateway, browser_page):
    page = browser_page
    _open_reference(page, inprocess_gateway)
    page.locator(LIST_INTENTS).locator(".opblock-summary-control").click()
    found = axe_violations(page)
    assert found == []
    assert page.problems == []


@pytest.mark.parametrize("path", ["quickstart", "events", "errors"])
@pytest.mark.parametrize("lang", ["en", "km"])
def test_guide_pages_render_cleanly_and_accessibly(inprocess_gateway, browser_page, path, lang):
    page = browser_page
    page.goto(f"{inprocess_gateway}/docs/{path}?lang={lang}")
    assert page.locator("html").get_attribute("lang") == lang
    assert axe_violations(page) == []
    assert page.problems == []
    screenshot(page, f"{path}-{lang}")


def test_the_quick_start_request_works_on_the_stack(inprocess_gateway, browser_page, test_key):
    page = browser_page
    page.goto(f"{inprocess_gateway}/docs/quickstart")
    text = page.inner_text("main")
    assert f"{inprocess_gateway}/v1/payment_intents" in text and "payloom.PaymentIntent.create(" in text

    r = requests.post(f"{inprocess_gateway}/v1/payment_intents", json=guide.QUICKSTART_INTENT, timeout=30,
                      headers={"Authorization": f"Bearer {test_key}",
                               "Idempotency-Key": guide.QUICKSTART_IDEMPOTENCY_KEY})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["amount"] == 1500 and created["livemode"] is False

    import payloom  # the SDK snippet of the page, with the same key
    client = payloom.Client(test_key, api_base=inprocess_gateway)
    intent = client.PaymentIntent.create(**guide.QUICKSTART_INTENT,
                                         idempotency_key=guide.QUICKSTART_IDEMPOTENCY_KEY)
    assert intent.id == created["id"]                      # replayed, not a second intent
    assert client.PaymentIntent.retrieve(intent.id).status == created["status"]
