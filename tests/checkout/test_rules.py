"""The page's pure rules: states and their version, amounts in both languages, return
URLs, link client keys, the card processor's origins, and the Khmer catalogue's coverage."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from shared.checkout import access, branding, links, money, view
from shared.checkout.card_entry import origin

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
REPO = Path(__file__).resolve().parents[2]


def intent(**kw):
    doc = {"id": "pi_" + "a" * 24, "status": "requires_payment_method", "amount": 1000,
           "currency": "USD", "amount_received": 0, "amount_pending": 0, "livemode": False,
           "expires_at": NOW + dt.timedelta(minutes=15), "metadata": {}}
    doc.update(kw)
    return doc


@pytest.mark.parametrize("status,late,expected", [
    ("requires_payment_method", False, "awaiting"), ("requires_payment_method", True, "expired"),
    ("processing", False, "processing"), ("underpaid", False, "underpaid"),
    ("succeeded", False, "succeeded"), ("overpaid", False, "succeeded"),
    ("paid_late", True, "succeeded"), ("expired", True, "expired"),
    ("canceled", False, "canceled")])
def test_state_of_every_status(status, late, expected):
    now = NOW + dt.timedelta(minutes=16) if late else NOW
    assert view.state_of(intent(status=status), now) == expected


def test_version_changes_with_what_the_panel_shows_only():
    base = intent()
    v = view.version(base, NOW, "en")
    assert v == view.version(dict(base, description="changed", updated_at=NOW), NOW, "en")
    assert v != view.version(base, NOW, "km")                              # another language
    assert v != view.version(dict(base, amount_pending=1000, status="processing"), NOW, "en")
    assert v != view.version(base, NOW + dt.timedelta(minutes=16), "en")   # now expired
    assert v != view.version(dict(base, crypto={"address": "0xabc", "received": "5"}), NOW, "en")
    assert re.fullmatch(r'"[0-9a-f]{20}"', v)


def test_card_notice_only_while_payable_again():
    err = {"code": "card_declined", "decline_code": "insufficient_funds"}
    declined = intent(card={"status": "requires_payment_method", "last_payment_error": err})
    assert view.card_notice(declined) == "insufficient_funds"
    assert view.card_notice(intent(card={"status": "requires_payment_method",
                                         "last_payment_error": {"code": "card_declined"}})) \
        == "card_declined"
    assert view.card_notice(dict(declined, status="succeeded")) is None
    assert view.card_notice(intent(card={"status": "requires_action"})) is None


def test_remaining_amounts_are_exact_integers():
    doc = intent(status="underpaid", amount_received=400,
                 crypto={"amount_due": str(10**18), "received": str(4 * 10**17)})
    assert view.remaining(doc) == 600
    assert view.crypto_remaining(doc) == 6 * 10**17
    assert view.overpaid_by(intent(status="overpaid", amount_received=1300)) == 300
    assert view.time_left(intent(), NOW) == "15:00"
    assert view.time_left(intent(expires_at=NOW + dt.timedelta(hours=2, seconds=5)), NOW) == \
        "2:00:05"
    assert view.time_left(intent(), NOW + dt.timedelta(hours=1)) == "00:00"


def test_amounts_in_english_and_khmer():
    assert money.ledger(123456, "USD", "en") == "1,234.56 USD"
    assert money.ledger(4100000, "KHR", "en") == "4,100,000 KHR"
    assert money.ledger(1_500_000_000, "ETH", "en") == "1.5 ETH"
    assert money.ledger(25_000_000, "USDC", "km").endswith(" USDC")
    assert money.ledger(None, "USD", "en") == ""
    assert money.plain_base(str(15 * 10**17), "ETH") == "1.5"
    assert money.plain_base(str(100 * 10**6), "USDC") == "100"
    assert money.plain_base("1", "ETH") == "0.000000000000000001"
    assert money.onchain(str(25 * 10**6), "USDC", "en") == "25 USDC"


def test_redirect_urls_prefer_the_intent_then_the_merchant_and_respect_the_mode():
    m = branding.Merchant("Shop", None, "S", "https://shop.example/thanks?pi={PAYMENT_INTENT_ID}",
                          None, None)
    doc = intent(livemode=True)
    assert branding.redirect_url(doc, m, "success") == \
        f"https://shop.example/thanks?pi={doc['id']}"
    assert branding.redirect_url(doc, m, "cancel") is None
    # the intent's own fields win over the merchant's defaults; metadata means nothing here
    doc.update(success_url="https://other.example/done", cancel_url="https://other.example/cart",
               metadata={"success_url": "https://evil.example/"})
    assert branding.redirect_url(doc, m, "success") == "https://other.example/done"
    assert branding.redirect_url(doc, m, "cancel") == "https://other.example/cart"
    # a merchant default on http://localhost serves test mode only
    local = branding.Merchant("Shop", None, "S", "http://localhost:3000/ok", None, None,
                              support_url="http://127.0.0.1/help")
    assert branding.redirect_url(intent(livemode=True), local, "success") is None
    assert branding.redirect_url(intent(livemode=False), local, "success") == \
        "http://localhost:3000/ok"
    assert local.support_link(True) is None and local.support_link(False) == "http://127.0.0.1/help"


def test_url_tokens_are_checked_before_any_read():
    good = "pi_" + "A1" * 12 + "_secret_" + "x" * 32
    assert access.SECRET_RE.match(good).group(1) == "pi_" + "A1" * 12
    for bad in ("pi_" + "a" * 24, good + "/", "pi_short_secret_" + "x" * 32,
                "in_" + "a" * 24 + "_secret_" + "x" * 32, good.replace("_secret_", "_secret_%")):
        assert not access.SECRET_RE.match(bad)
    assert access.INVOICE_RE.match("in_" + "a" * 24) and not access.INVOICE_RE.match("in_x")
    assert access.LINK_RE.match("plink_" + "b" * 24) and not access.LINK_RE.match("plink_../")


def test_link_client_keys_are_per_browser_link_and_amount():
    k = links.client_key("v" * 32, "plink_1", 500)
    assert k == links.client_key("v" * 32, "plink_1", 500)
    assert len({k, links.client_key("w" * 32, "plink_1", 500),
                links.client_key("v" * 32, "plink_2", 500),
                links.client_key("v" * 32, "plink_1", 501)}) == 4
    assert 16 <= len(k) <= 128 and k.isalnum()


def test_origin_of_processor_urls():
    assert origin("https://checkout.stripe.com/c/pay/cs_1") == "https://checkout.stripe.com"
    assert origin("http://127.0.0.1:5000/_sim/checkout/cs") == "http://127.0.0.1:5000"
    assert origin("javascript:alert(1)") == ""


def test_khmer_catalogue_translates_every_message(tmp_path):
    """Every msgid the page uses has a Khmer translation with the same placeholders (the
    strings of shared/web's own error page come from its catalogue, the fallback)."""
    from tests.web.test_web_catalogue import assert_khmer, catalogue_of
    wanted, km = catalogue_of("checkout", tmp_path)
    assert len(wanted) > 80
    assert wanted - set(km) == set()
    for msgid in wanted:
        assert_khmer(msgid, km[msgid])


def test_an_underpaid_request_asks_for_the_rest_only():
    from shared.chain import payment_uri
    from shared.checkout import crypto
    token, deposit = "0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x" + "00" * 19 + "01"
    full = payment_uri.erc20_uri(token, deposit, 31337, 25_000_000)
    c = {"network": "anvil", "chain_id": 31337, "asset": "USDC", "token": token,
         "address": deposit, "uri": full, "amount_due": "25000000", "received": "0"}
    shown = crypto.details(intent(crypto=c), "en")
    assert shown["uri"] == full and shown["amount_plain"] == "25"
    assert shown["qr"].startswith("data:image/png;base64,")
    part = crypto.details(intent(status="underpaid", crypto={**c, "received": "10000000"}), "en")
    req = payment_uri.parse_uri(part["uri"])
    assert (req.amount, req.token, req.chain_id, req.recipient) == (15_000_000, token, 31337,
                                                                    deposit)
    assert part["remaining"] == "15 USDC" and part["remaining_plain"] == "15"
    assert part["qr"] != shown["qr"]
