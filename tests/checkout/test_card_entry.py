"""Card payments from the page, over real HTTP: the Stripe-protocol simulator's hosted card form
(Checkout Session in setup mode), its return to the page, 3-D Secure, declines, replays, and the
signed webhook through the inbox that alone makes the intent paid."""
from __future__ import annotations

import urllib.parse

import requests

from tests.checkout.conftest import assert_page_headers, csrf_of
from tests.support.polling import wait_for


def start_card(client, secret):
    page = client.get(f"/pay/{secret}")
    html = page.get_data(as_text=True)
    r = client.post(f"/pay/{secret}/card", data={"csrf_token": csrf_of(html)})
    return page, r


def type_card(url, number, exp="12/34", cvc="123"):
    """The payer on the processor's page: GET the form, submit the card."""
    form = requests.get(url, timeout=10)
    assert form.status_code == 200 and 'autocomplete="cc-number"' in form.text.replace(
        "autocomplete=cc-number", 'autocomplete="cc-number"')
    return requests.post(url + "/complete", data={"number": number, "exp": exp, "cvc": cvc},
                         allow_redirects=False, timeout=10)


def back_to_page(client, location):
    parts = urllib.parse.urlsplit(location)
    return client.get(parts.path + ("?" + parts.query if parts.query else ""))


def test_card_payment_through_the_processors_page(deps, shop, client, stripe):
    pi, secret = shop.intent(2500)
    page, r = start_card(client, secret)
    assert_page_headers(page)
    assert f"form-action 'self' {stripe.url}" in page.headers["Content-Security-Policy"]
    assert r.status_code == 303 and r.headers["Referrer-Policy"] == "no-referrer"
    url = r.headers["Location"]
    assert url.startswith(f"{stripe.url}/_sim/checkout/cs_test_")
    session = stripe.sessions[url.rsplit("/", 1)[1]]
    assert session["metadata"] == {"payloom_intent_id": pi} and session["mode"] == "setup"
    assert secret not in session["cancel_url"] or session["cancel_url"].endswith(f"/pay/{secret}")
    back = type_card(url, "4242 4242 4242 4242")
    assert back.status_code == 303
    location = back.headers["Location"]
    assert location.startswith(f"http://localhost/pay/{secret}/card/return?session=cs_test_")
    done = back_to_page(client, location)
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/pay/{secret}")
    # the processor was paid, but only its signed webhook makes the intent paid
    doc = wait_for(lambda: (d := shop.doc(pi))["status"] == "succeeded" and d)
    assert doc["method"] == "card" and doc["amount_received"] == 2500
    assert "Payment successful" in client.get(f"/pay/{secret}").get_data(as_text=True)
    # the processor's PaymentIntent was confirmed with the card typed there, never seen by us
    (proc,) = stripe.intents.values()
    assert proc["payment_method"].startswith("pm_") and proc["payment_method"] in stripe.payment_methods
    # a replayed return (refresh, back button) charges nothing twice
    again = back_to_page(client, location)
    assert again.status_code == 303 and len(stripe.intents) == 1
    assert shop.doc(pi)["card"]["attempts"] == 1


def test_declined_card_is_shown_and_another_card_pays(deps, shop, client, stripe):
    pi, secret = shop.intent(900)
    _, r = start_card(client, secret)
    back = type_card(r.headers["Location"], "4000000000000002")
    assert back_to_page(client, back.headers["Location"]).status_code == 303
    html = client.get(f"/pay/{secret}").get_data(as_text=True)
    assert 'id="card-notice"' in html and "Your card was declined" in html
    assert shop.doc(pi)["status"] == "requires_payment_method"
    _, r = start_card(client, secret)
    back = type_card(r.headers["Location"], "5555555555554444")
    back_to_page(client, back.headers["Location"])
    wait_for(lambda: shop.doc(pi)["status"] == "succeeded")


def test_three_d_secure(deps, shop, client, stripe):
    pi, secret = shop.intent(4000)
    _, r = start_card(client, secret)
    back = type_card(r.headers["Location"], "4000002760003184")
    challenge = back_to_page(client, back.headers["Location"])
    assert challenge.status_code == 303
    url = challenge.headers["Location"]
    assert url.startswith(f"{stripe.url}/_sim/3ds/")
    assert shop.doc(pi)["status"] == "processing"                   # waiting for the bank
    html = client.get(f"/pay/{secret}").get_data(as_text=True)
    assert "Try the card again" in html                            # an abandoned challenge
    finish = requests.post(url + "/complete", data={"outcome": "succeed"}, allow_redirects=False,
                           timeout=10)
    assert finish.status_code == 302
    assert finish.headers["Location"].startswith(f"http://localhost/pay/{secret}/card/done?")
    assert back_to_page(client, finish.headers["Location"]).headers["Location"].endswith(
        f"/pay/{secret}")
    wait_for(lambda: shop.doc(pi)["status"] == "succeeded")


def test_bad_card_returns_are_refused(deps, shop, client, stripe):
    pi, secret = shop.intent(1000)
    other, other_secret = shop.intent(1000)
    _, r = start_card(client, other_secret)
    back = type_card(r.headers["Location"], "4242424242424242")
    session = urllib.parse.parse_qs(urllib.parse.urlsplit(back.headers["Location"]).query)["session"][0]
    # another intent's session on this page
    wrong = client.get(f"/pay/{secret}/card/return?session={session}")
    assert wrong.status_code == 400 and "could not be used" in wrong.get_data(as_text=True)
    for bad in ("", "cs_x", "../../v1", "cs_" + "a" * 300, "cs_test_unknown000000"):
        resp = client.get(f"/pay/{secret}/card/return?session={urllib.parse.quote(bad)}")
        assert resp.status_code == 400, bad
    assert stripe.intents == {} and shop.doc(pi)["status"] == "requires_payment_method"
    # the stranger's try used nothing up: the real page's return still pays
    assert back_to_page(client, back.headers["Location"]).status_code == 303
    wait_for(lambda: shop.doc(other)["status"] == "succeeded")
    assert shop.doc(pi)["status"] == "requires_payment_method"
    # the hosted form refuses a wrong number without making anything
    _, r = start_card(client, secret)
    made = len(stripe.payment_methods)
    refused = type_card(r.headers["Location"], "4242424242424241")
    assert refused.status_code == 400 and "card number is invalid" in refused.text
    assert len(stripe.payment_methods) == made


def test_card_is_not_offered_where_it_cannot_pay(deps, shop, client, stripe):
    _, secret = shop.intent(1_000_000, "USDC")                      # a token: no card
    html = client.get(f"/pay/{secret}").get_data(as_text=True)
    assert 'id="card"' not in html
    r = client.post(f"/pay/{secret}/card", data={"csrf_token": csrf_of(html)})
    assert r.status_code == 400 and "cannot be paid by card" in r.get_data(as_text=True)
    assert stripe.sessions == {}
