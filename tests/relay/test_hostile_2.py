"""Regressions found by the second outside pass (``make run`` driven like a hostile client
suite): each test is one bug seen from outside (each failed before its fix)."""
from __future__ import annotations

import pytest

from shared.relay.khmer import KM
from tests.relay.dispatch_kit import env  # noqa: F401

UNKNOWN_ROUTE_KM = KM["unknown_route"]


@pytest.mark.parametrize("accept", ["km-KH", "km-KH, en-US;q=0.8", "km-KH,en;q=0.8",
                                    "en;q=0.5, km-KH;q=0.9"])
def test_a_khmer_locale_with_a_region_gets_khmer(kit, relay_client, accept):
    p = kit.phone()
    headers = p.headers(**{"Accept-Language": accept})
    r = relay_client.get("/v1/relay/nowhere", headers=headers)
    assert r.status_code == 404
    assert r.get_json()["error"].get("message_km") == UNKNOWN_ROUTE_KM, r.get_json()
    ack = relay_client.post(f"/v1/relay/devices/{p.device_id}/heartbeat", json={}, headers=headers)
    assert ack.status_code == 200 and ack.get_json().get("message_km"), ack.get_json()


def test_a_regional_english_locale_that_also_lists_khmer_stays_english(kit, relay_client):
    p = kit.phone()
    r = relay_client.get("/v1/relay/nowhere",
                         headers=p.headers(**{"Accept-Language": "en-GB, km;q=0.5"}))
    assert set(r.get_json()["error"]) == {"type", "code", "message", "param"}


@pytest.mark.parametrize("accept", ["en-US", "km;q=0", "*", "fr-FR", "en, km"])
def test_english_and_other_locales_stay_english(kit, relay_client, accept):
    """Guard for the fix above: only a preference for Khmer adds ``message_km``."""
    p = kit.phone()
    r = relay_client.get("/v1/relay/nowhere", headers=p.headers(**{"Accept-Language": accept}))
    assert set(r.get_json()["error"]) == {"type", "code", "message", "param"}


# --- invisible-only texts that still pass -------------------------------------------------------
# Hangul fillers, the braille blank, lone combining marks (Khmer's invisible inherent vowels,
# the combining grapheme joiner, variation selectors) and the object replacement character
# show nothing: an SMS of only these is a blank SMS the client pays for, a business name of
# only these is a blank name on the payment page. SMS text refuses the Hangul fillers already
# (shared.relay.encoding._visible), display names do not (shared.platform.models._display_text).
BLANK = ["\u2800", "\u2800 \u2800", "\u17b4\u17b5", "\u034f", "\ufe0f", "\ufffc"]
BLANK_NAMES = BLANK + ["\u3164", "\u115f", "\uffa0"]


@pytest.mark.parametrize("text", BLANK)
def test_an_sms_of_blank_characters_is_empty(env, text):
    from tests.relay.supply_kit import fresh_phone
    r = env.messages.post("/v1/messages", headers=env.client.headers(),
                          json={"to": fresh_phone("smart"), "text": text})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "text_empty", r.get_json()


@pytest.mark.parametrize("name", BLANK_NAMES)
def test_a_blank_business_or_display_name_is_refused(name):
    from pydantic import ValidationError

    from shared.merchants.branding import UpdateBranding
    from shared.merchants.models import CreateMerchant
    with pytest.raises(ValidationError):
        CreateMerchant(business_name=name, country="KH", settlement_asset="USD")
    with pytest.raises(ValidationError):
        UpdateBranding(display_name=name)


@pytest.mark.parametrize("name", ["Angkor Coffee", "កាហ្វេ\u200bអង្គរ", "Café ☕", "\u1100\u1161 Cafe"])
def test_real_names_with_marks_and_joiners_stay_valid(name):
    """Guard for the fix: Khmer (consonant + marks, U+200B between words), accents, emoji."""
    from shared.merchants.models import CreateMerchant
    assert CreateMerchant(business_name=name, country="KH", settlement_asset="USD").business_name
