"""The merchant's branding on the hosted page: its display name, its logo inlined, its colour
as a nonce'd style the CSP allows, its support contacts (an http support page only in test
mode), on the intent page and the payment link page alike."""
from __future__ import annotations

import base64
import re

from shared.invoices import links as links_service
from shared.invoices.models import CreateLink
from shared.platform.uow import run_unit
from tests.checkout.test_pages import page
from tests.merchants.test_branding_rules import png


def _nonce(resp) -> str:
    return re.search(r"'nonce-([^']+)'", resp.headers["Content-Security-Policy"]).group(1)


def test_the_page_wears_the_merchants_branding(deps, shop, client):
    logo = base64.b64encode(png(6, 6)).decode()
    shop.brand(display_name="Angkor Café", brand_color="#888888", logo=logo,
               support_email="help@angkor.example", support_url="http://localhost:9000/help")
    _pi, secret = shop.intent(1000, payment_method_types=["wallet"])
    r = client.get(f"/pay/{secret}")
    html = r.get_data(as_text=True)
    assert "Angkor Café" in html and "Angkor Coffee" not in html
    assert f'<img class="logo" src="data:image/png;base64,{logo}" alt="Angkor Café"' in html
    assert f'<style nonce="{_nonce(r)}">:root{{--brand:#888888;--on-brand:#000000}}</style>' in html
    assert '<a href="mailto:help@angkor.example">help@angkor.example</a>' in html
    assert 'href="http://localhost:9000/help" rel="noreferrer"' in html          # test mode
    _pi, live_secret = shop.intent(1000, live=True, payment_method_types=["wallet"])
    live = page(client, live_secret)
    assert "localhost:9000" not in live and "mailto:help@angkor.example" in live
    km = page(client, secret, headers={"Accept-Language": "km"})
    assert "មានសំណួរអំពីការទូទាត់នេះមែនទេ?" in km and "ជំនួយពី Angkor Café" in km


def test_without_branding_the_page_keeps_its_own_look(deps, shop, client):
    _pi, secret = shop.intent(1000, payment_method_types=["wallet"])
    html = page(client, secret)
    assert "Angkor Coffee" in html and 'class="logo monogram"' in html
    assert "--brand" not in html and "mailto:" not in html


def test_the_link_page_is_branded_too(deps, shop, client):
    shop.brand(brand_color="#0b6e4f", support_url="https://angkor.example/help")
    link = run_unit(deps, lambda uow: links_service.create(
        uow, shop.principal, CreateLink(currency="USD", amount=500), None))
    r = client.get(f"/pay/link/{link.id}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert f'<style nonce="{_nonce(r)}">:root{{--brand:#0b6e4f;--on-brand:#ffffff}}</style>' in html
    assert 'href="https://angkor.example/help"' in html
