"""The hosted payment page through the checkout function (functions-framework's test client) on
the emulators: access by client secret / invoice / link only, every state's panel, the status
poll's ETag, Khmer, CSRF, the crypto and wallet forms, MFA, redirects to the merchant, and the
ledger's invariants after money moved."""
from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pyotp
import pytest
from markupsafe import escape

from shared.checkout import wallet as wallet_mod
from shared.invoices import invoices, links
from shared.invoices.models import CreateInvoice, CreateLink
from shared.ledger import accounts, audit
from shared.payments import intents
from shared.platform.clock import FrozenClock
from shared.platform.uow import run_unit
from tests.checkout.conftest import assert_page_headers, csrf_of
from tests.ledger.conftest import fund
from tests.support.identity import DEFAULT_PASSWORD, create_user_with_token


def ledger_clean(deps):
    violations, _ = audit.check(audit.snapshot(deps.db))
    assert violations == [], violations[:3]


def page(client, secret, **kw):
    r = client.get(f"/pay/{secret}", **kw)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert_page_headers(r)
    return r.get_data(as_text=True)


def post(client, path, html, data=None, **kw):
    return client.post(path, data={"csrf_token": csrf_of(html), **(data or {})}, **kw)


def cookies(resp) -> str:
    return "\n".join(resp.headers.getlist("Set-Cookie"))


def no_internal_ids(html: str, shop) -> None:
    """Nothing of the merchant's or the platform's own bookkeeping is in a page."""
    assert shop.id not in html and "mch_" not in html
    for marker in ("key_", "usr_", "txf_", "client_secret_hash", "derivation", "tenant",
                   "Traceback", "evt_"):
        assert marker not in html, marker


# --- access ---------------------------------------------------------------------------------------
def test_page_shows_the_merchant_the_amount_and_the_methods(deps, shop, client):
    shop.brand(logo="iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNiAAAABgADNjd8qAAAAABJRU5ErkJggg==")
    _pi, secret = shop.intent(1250, "USD", description="2 iced coffees")
    html = page(client, secret)
    assert "Angkor Coffee" in html and "12.50 USD" in html and "2 iced coffees" in html
    assert "About 51,250 KHR" in html                             # 4100 KHR per USD, rounded down
    assert 'src="data:image/png;base64,iVBOR' in html             # the logo, inline
    for section in ('id="crypto"', 'id="wallet"', 'id="card"'):
        assert section in html
    assert "USDC on anvil" in html and "12.5 USDC" in html          # indicative, per option
    assert "Test mode" in html
    no_internal_ids(html, shop)
    # the secret appears only in this page's own paths, never elsewhere in the document
    assert html.count(secret) == html.count(f"/pay/{secret}") > 0


def test_only_the_client_secret_opens_the_page(deps, shop, make_shop, client):
    pi, secret = shop.intent(1000)
    other_pi, other_secret = make_shop(name="Other").intent(500)
    for token in (pi, secret + "x", secret[:-1] + ("A" if secret[-1] != "A" else "B"),
                  f"{pi}_secret_{other_secret.split('_secret_')[1]}", other_pi,
                  "pi_" + "0" * 24 + "_secret_" + "x" * 32):
        for suffix in ("", "/status", "/done", "/cancel"):
            r = client.get(f"/pay/{token}{suffix}")
            assert r.status_code == 404, (token, suffix)
            assert "Traceback" not in r.get_data(as_text=True) and secret not in \
                r.get_data(as_text=True)
    assert client.get(f"/pay/{other_secret}").status_code == 200


def test_khmer_by_accept_language_and_by_the_switch(deps, shop, client):
    _, secret = shop.intent(1000)
    km = page(client, secret, headers={"Accept-Language": "km-KH,km;q=0.9,en;q=0.5"})
    assert '<html lang="km">' in km and "ជ្រើសរើសវិធីបង់ប្រាក់" in km and "កាបូប Payloom" in km
    en = page(client, secret, headers={"Accept-Language": "fr"})
    assert '<html lang="en">' in en and "Choose how to pay" in en
    switched = client.get(f"/pay/{secret}?lang=km")
    assert "lang=km" in cookies(switched)
    assert "ជ្រើសរើសវិធីបង់ប្រាក់" in page(client, secret)           # the cookie remembers it
    missing = client.get("/pay/pi_" + "0" * 24 + "_secret_" + "y" * 32)
    assert missing.status_code == 404 and "ទំព័របង់ប្រាក់នេះមិនមានទេ" in missing.get_data(as_text=True)


def test_status_poll_answers_304_until_the_panel_changes(deps, shop, client):
    pi, secret = shop.intent(1000)
    first = client.get(f"/pay/{secret}/status")
    body = first.get_json()
    assert first.status_code == 200 and body["state"] == "awaiting" and not body["final"]
    assert first.headers["Cache-Control"] == "no-store"
    assert 'id="wallet"' in body["html"] and secret not in body["html"].replace(
        f"/pay/{secret}/", "")
    assert set(body) == {"state", "etag", "html", "final", "redirect"}
    etag = first.headers["ETag"]
    again = client.get(f"/pay/{secret}/status", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    # money arrives (the same service the chain watcher's consumer calls): a new version
    record(deps, pi, 1000, final=False)
    changed = client.get(f"/pay/{secret}/status", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["state"] == "processing"
    assert changed.headers["ETag"] != etag


def test_csrf_is_required_on_every_form(deps, shop, client):
    _, secret = shop.intent(1000)
    page(client, secret)
    for action in ("crypto", "wallet/signin", "wallet/pay", "wallet/signout", "card"):
        r = client.post(f"/pay/{secret}/{action}", data={"option": "anvil:ETH"})
        assert r.status_code == 403, action
        r = client.post(f"/pay/{secret}/{action}", data={"csrf_token": "forged" * 8})
        assert r.status_code == 403, action
    html = page(client, secret)
    r = post(client, f"/pay/{secret}/crypto", html, {"option": "anvil:ETH"},
             headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403


# --- states -------------------------------------------------------------------------------------
def record(deps, intent_id, amount, *, final=True, reference="anvil:0xabc:0", method="crypto"):
    def unit(uow):
        ref, doc = intents.load_for_update(uow, intent_id)
        return intents.record_received(uow, ref, doc, amount, method=method, final=final,
                                       reference=reference)
    return run_unit(deps, unit)


def test_underpaid_overpaid_and_paid_late_panels(deps, shop, client):
    pi, secret = shop.intent(1000)
    record(deps, pi, 400)
    html = page(client, secret)
    assert "Part of the payment arrived" in html and "Still due: 6.00 USD" in html
    assert 'id="wallet"' not in html and 'id="card"' not in html    # only the rest, on chain
    pi2, secret2 = shop.intent(1000)
    record(deps, pi2, 1300)
    html = page(client, secret2)
    assert "Payment successful" in html and 'id="overpaid"' in html and "3.00 USD" in html
    body = client.get(f"/pay/{secret2}/status").get_json()
    assert body["final"] and body["state"] == "succeeded" and body["redirect"] is None


def test_expired_and_canceled_panels(deps, shop, client):
    _pi, secret = shop.intent(1000, expires_in_seconds=60)
    real = deps.clock
    deps.clock = FrozenClock(real.now() + dt.timedelta(seconds=61))
    try:                                   # shown at once, before the expiry timer has run
        html = page(client, secret)
        assert "This payment request has expired" in html and 'id="wallet"' not in html
        assert client.get(f"/pay/{secret}/status").get_json()["state"] == "expired"
    finally:
        deps.clock = real
    pi2, secret2 = shop.intent(1000)
    run_unit(deps, lambda uow: intents.cancel(uow, shop.principal, pi2, "abandoned"))
    html = page(client, secret2)
    assert "This payment was canceled" in html and "<form" not in html


# --- crypto ---------------------------------------------------------------------------------------
def test_choosing_crypto_shows_the_payment_request(deps, shop, client):
    pi, secret = shop.intent(2_500_000, "USDC")                    # 2.5 USDC
    html = page(client, secret)
    r = post(client, f"/pay/{secret}/crypto", html, {"option": "anvil:USDC"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/pay/{secret}#crypto")
    html = page(client, secret)
    crypto = shop.doc(pi)["crypto"]
    assert crypto["address"] in html and "2.5 USDC" in html
    assert f'data-copy="{crypto["address"]}"' in html and 'data-copy="2.5"' in html
    assert f'href="{escape(crypto["uri"])}"' in html and crypto["uri"].startswith("ethereum:")
    assert 'class="qr" src="data:image/png;base64,' in html
    assert "chain ID 31337" in html and crypto["token"] in html
    no_internal_ids(html, shop)
    # choosing again with the same option is idempotent; the page then has no chooser
    again = post(client, f"/pay/{secret}/crypto", html, {"option": "anvil:USDC"})
    assert again.status_code == 303 and shop.doc(pi)["crypto"]["address"] == crypto["address"]
    assert 'name="option"' not in html
    # another option is refused with a message, nothing changes
    other = post(client, f"/pay/{secret}/crypto", html, {"option": "anvil:ETH"})
    assert other.status_code == 409 and "already started" in other.get_data(as_text=True)


@pytest.mark.parametrize("option", ["", "anvil", "anvil:XXX", "mainnet:ETH", "anvil:KHR",
                                    "a" * 500, "anvil:eth"])
def test_bad_crypto_options_are_a_message_not_an_error(deps, shop, client, option):
    pi, secret = shop.intent(1000)
    html = page(client, secret)
    r = post(client, f"/pay/{secret}/crypto", html, {"option": option})
    assert 400 <= r.status_code < 500
    assert 'role="alert"' in r.get_data(as_text=True)
    assert shop.doc(pi)["crypto"] is None


# --- wallet ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Payer:
    id: str
    email: str


@pytest.fixture
def payer(deps):
    email = f"payer{threading.get_ident() % 10000}x{id(deps) % 10000}@example.com"
    uid, _ = create_user_with_token(deps, email=email)
    return Payer(uid, email)


def sign_in(client, secret, email, password=DEFAULT_PASSWORD):
    html = page(client, secret)
    return post(client, f"/pay/{secret}/wallet/signin", html,
                {"email": email, "password": password})


def test_wallet_sign_in_and_pay(deps, shop, client, payer):
    fund(deps, payer.id, 5_000)
    pi, secret = shop.intent(1250, live=True)          # test mode never touches a real wallet
    wrong = sign_in(client, secret, payer.email, "not the password")
    assert wrong.status_code == 401 and "email or password is not right" in wrong.get_data(as_text=True)
    assert payer.email in wrong.get_data(as_text=True)              # the form keeps the email
    ok = sign_in(client, secret, payer.email)
    assert ok.status_code == 303
    cookie = next(c for c in ok.headers.getlist("Set-Cookie")
                  if c.startswith(f"{wallet_mod.TOKEN_COOKIE}="))
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Path=/pay" in cookie and "Max-Age=600" in cookie
    html = page(client, secret)
    assert f"Signed in as {payer.email}" in html and "Pay 12.50 USD from my wallet" in html
    assert "eyJ" not in html                                        # the token stays in the cookie
    r = post(client, f"/pay/{secret}/wallet/pay", html)
    assert r.status_code == 303 and "Max-Age=0" in cookies(r)
    doc = shop.doc(pi)
    assert doc["status"] == "succeeded" and doc["method"] == "wallet"
    wallet = accounts.read_balances(deps.db, [accounts.user_wallet_id(payer.id, "USD")])
    assert wallet[accounts.user_wallet_id(payer.id, "USD")][1].available == 5_000 - 1250
    assert "Payment successful" in page(client, secret)
    # the page's session is over: its token no longer pays anything
    sessions = [s.to_dict() for s in deps.db.collection("sessions").stream()
                if s.get("user_id") == payer.id]
    assert any(s["status"] == "revoked" for s in sessions)
    ledger_clean(deps)


def test_wallet_refusals_move_nothing(deps, shop, client, payer):
    fund(deps, payer.id, 500)
    pi, secret = shop.intent(1000, live=True)
    assert sign_in(client, secret, payer.email).status_code == 303
    html = page(client, secret)
    r = post(client, f"/pay/{secret}/wallet/pay", html)
    assert r.status_code == 400 and "balance does not cover" in r.get_data(as_text=True)
    assert shop.doc(pi)["status"] == "requires_payment_method"
    # signed out: paying asks to sign in first
    out = post(client, f"/pay/{secret}/wallet/signout", html)
    assert out.status_code == 303
    r = post(client, f"/pay/{secret}/wallet/pay", page(client, secret))
    assert r.status_code == 400 and "Sign in to your Payloom wallet first" in r.get_data(as_text=True)
    ledger_clean(deps)


def test_wallet_with_mfa(deps, shop, client, payer):
    from shared.identity.factors import mfa
    fund(deps, payer.id, 5_000)
    enrol = run_unit(deps, lambda uow: mfa.begin_totp(uow, payer.id))
    codes = run_unit(deps, lambda uow: mfa.confirm_totp(uow, payer.id,
                                                        pyotp.TOTP(enrol.secret).now()))
    pi, secret = shop.intent(700)
    r = sign_in(client, secret, payer.email)
    assert r.status_code == 303 and wallet_mod.MFA_COOKIE in cookies(r)
    html = page(client, secret)
    assert 'id="mfa-code"' in html and wallet_mod.TOKEN_COOKIE not in cookies(r)
    bad = post(client, f"/pay/{secret}/wallet/mfa", html, {"code": "000000"})
    assert bad.status_code == 401 and "code is not valid" in bad.get_data(as_text=True)
    good = post(client, f"/pay/{secret}/wallet/mfa", html, {"code": codes.backup_codes[0]})
    assert good.status_code == 303 and wallet_mod.TOKEN_COOKIE in cookies(good)
    html = page(client, secret)
    assert post(client, f"/pay/{secret}/wallet/pay", html).status_code == 303
    assert shop.doc(pi)["status"] == "succeeded"


def test_two_payers_at_once_pay_once(deps, shop, function_client):
    pi, secret = shop.intent(1000, live=True)
    payers = []
    for i in range(3):
        uid, _ = create_user_with_token(deps, email=f"racer{i}{id(deps) % 9999}@example.com")
        fund(deps, uid, 2_000)
        payers.append((uid, f"racer{i}{id(deps) % 9999}@example.com"))
    clients = [function_client("checkout") for _ in payers]
    pages_ = []
    for c, (_, email) in zip(clients, payers):
        assert sign_in(c, secret, email).status_code == 303
        pages_.append(page(c, secret))
    results = [None] * len(clients)
    barrier = threading.Barrier(len(clients))

    def go(i):
        barrier.wait()
        results[i] = post(clients[i], f"/pay/{secret}/wallet/pay", pages_[i]).status_code
    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [303, 409, 409], results
    spent = [2_000 - accounts.read_balances(deps.db, [accounts.user_wallet_id(u, "USD")])[
        accounts.user_wallet_id(u, "USD")][1].available for u, _ in payers]
    assert sorted(spent) == [0, 0, 1000]
    assert shop.doc(pi)["amount_received"] == 1000
    ledger_clean(deps)


# --- the way back to the merchant ------------------------------------------------------------------
def test_done_and_cancel_redirect_without_leaking_the_secret(deps, shop, client):
    shop.brand(success_url="https://shop.example/thanks?order={PAYMENT_INTENT_ID}",
               cancel_url="https://shop.example/cart")
    pi, secret = shop.intent(1000)
    html = page(client, secret)
    assert f'href="/pay/{secret}/cancel"' in html
    r = client.get(f"/pay/{secret}/done")                         # not paid yet: back to the page
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/pay/{secret}")
    r = client.get(f"/pay/{secret}/cancel")
    assert r.headers["Location"] == "https://shop.example/cart"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    record(deps, pi, 1000)
    body = client.get(f"/pay/{secret}/status").get_json()
    assert body["redirect"] == f"/pay/{secret}/done" and 'data-auto="3"' in body["html"]
    r = client.get(f"/pay/{secret}/done")
    assert r.status_code == 303 and r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Location"] == f"https://shop.example/thanks?order={pi}"
    assert "secret" not in r.headers["Location"]
    # the intent's own URLs win over the merchant's defaults; metadata is only metadata
    pi2, secret2 = shop.intent(1000, success_url="https://shop.example/order/{PAYMENT_INTENT_ID}",
                               cancel_url="https://shop.example/basket",
                               metadata={"success_url": "https://evil.example/"})
    assert client.get(f"/pay/{secret2}/cancel").headers["Location"] == "https://shop.example/basket"
    record(deps, pi2, 1000)
    assert client.get(f"/pay/{secret2}/done").headers["Location"] == f"https://shop.example/order/{pi2}"


# --- invoices and payment links ---------------------------------------------------------------------
def make_invoice(deps, shop, *, finalize=True, **fields):
    body = CreateInvoice(customer={"email": "ann@example.com", "name": "Ann"}, currency="USD",
                         lines=[{"description": "Espresso", "quantity": 3, "unit_amount": 300},
                                {"description": "Cake", "quantity": 1, "unit_amount": 1250}],
                         **fields)
    inv = run_unit(deps, lambda uow: invoices.create(uow, shop.principal, body, None))
    if finalize:
        inv = run_unit(deps, lambda uow: invoices.finalize(uow, shop.principal, inv.id))
    return inv


def test_invoice_page(deps, shop, client):
    draft = make_invoice(deps, shop, finalize=False)
    assert client.get(f"/pay/invoice/{draft.id}").status_code == 404
    inv = make_invoice(deps, shop)
    r = client.get(f"/pay/invoice/{inv.id}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "21.50 USD" in html and inv.number in html
    assert "Espresso" in html and "Cake" in html
    assert f'action="/pay/invoice/{inv.id}/wallet/signin"' in html
    no_internal_ids(html, shop)
    assert inv.payment_intent not in html                         # the intent's id stays inside
    record(deps, inv.payment_intent, inv.total)
    assert client.get(f"/pay/invoice/{inv.id}/status").get_json()["state"] == "succeeded"
    other = make_invoice(deps, shop)
    run_unit(deps, lambda uow: invoices.void(uow, shop.principal, other.id))
    assert "This payment was canceled" in client.get(f"/pay/invoice/{other.id}").get_data(as_text=True)
    for bad in ("in_" + "0" * 24, "in_x", inv.payment_intent):
        assert client.get(f"/pay/invoice/{bad}").status_code == 404


def make_link(deps, shop, **fields):
    body = CreateLink(currency="USD", **({"amount": 500} if not fields else fields))
    return run_unit(deps, lambda uow: links.create(uow, shop.principal, body, None))


def intents_of(deps, shop):
    return [s.id for s in deps.db.collection("payment_intents").stream()
            if s.get("tenant") == shop.id]


def test_payment_link_makes_one_intent_per_browser(deps, shop, client, function_client):
    link = make_link(deps, shop, amount=500, description="Donation")
    for _ in range(10):                                           # a refresh storm of GETs
        html = client.get(f"/pay/link/{link.id}").get_data(as_text=True)
    assert "5.00 USD" in html and "Donation" in html and intents_of(deps, shop) == []
    first = post(client, f"/pay/link/{link.id}", html)
    assert first.status_code == 303 and "payloom_pay_visitor=" in cookies(first)
    target = first.headers["Location"]
    again = post(client, f"/pay/link/{link.id}", html)           # a double click, a re-POST
    assert again.headers["Location"] == target and len(intents_of(deps, shop)) == 1
    assert client.get(target).status_code == 200
    other = function_client("checkout")                           # another browser
    html2 = other.get(f"/pay/link/{link.id}").get_data(as_text=True)
    assert post(other, f"/pay/link/{link.id}", html2).headers["Location"] != target
    assert len(intents_of(deps, shop)) == 2


def test_custom_amount_link(deps, shop, client):
    link = make_link(deps, shop, custom_amount={"minimum": 100, "maximum": 10_000, "preset": 500})
    html = client.get(f"/pay/link/{link.id}").get_data(as_text=True)
    assert 'value="5.00"' in html and "Between 1.00 USD and 100.00 USD" in html
    for bad in ("0.50", "abc", "1.001", "", "100000"):
        r = post(client, f"/pay/link/{link.id}", html, {"amount": bad})
        assert r.status_code == 400 and "limits shown" in r.get_data(as_text=True), bad
    assert intents_of(deps, shop) == []
    r = post(client, f"/pay/link/{link.id}", html, {"amount": "12.34"})
    assert r.status_code == 303
    assert shop.doc(intents_of(deps, shop)[0])["amount"] == 1234
    run_unit(deps, lambda uow: links.update(uow, shop.principal, link.id,
                                            links.UpdateLink(active=False)))
    assert client.get(f"/pay/link/{link.id}").status_code == 404
