"""Phone numbers: E.164 normalisation, Cambodian carriers by prefix, invalid input."""
from __future__ import annotations

import json

import pytest

from shared.identity.factors import phone as phone_mod
from shared.identity.factors.phone import parse_phone
from shared.platform.errors import InvalidRequest
from tests.identity.helpers import assert_error, fresh_ip

CARRIER_CASES = {
    "Smart": ["+85510234567", "015 234 567", "016234567", "+855 69 234 567", "070234567",
              "+85581234567", "086 234 567", "087234567", "093234567", "+855962345678", "098234567"],
    "Cellcard": ["+85511234567", "012 234 567", "+855122345678", "014234567", "017234567",
                 "061234567", "+855762345678", "077234567", "078234567", "085234567",
                 "089234567", "092234567", "095234567", "099234567"],
    "Metfone": ["+855312345678", "060234567", "066234567", "067234567", "068234567",
                "+855712345678", "0882345678", "090234567", "097234567", "0972345678",
                "+855724812345"],
    "Seatel": ["+85518234567", "0182345678"],
}


@pytest.mark.parametrize("carrier,number", [(c, n) for c, ns in CARRIER_CASES.items() for n in ns])
def test_cambodian_carrier_by_prefix(carrier, number):
    parsed = parse_phone(number)
    assert parsed.carrier is not None and parsed.carrier.name == carrier, parsed
    assert parsed.e164.startswith("+855") and parsed.e164 == "+855" + parsed.national_number
    assert parsed.region == "KH"


def test_longest_prefix_wins():
    # 7248 (Metfone wireless local loop) beats nothing shorter; 3248 is Telecom Cambodia.
    assert parse_phone("+855724812345").carrier.prefix == "7248"
    assert parse_phone("+855324812345").carrier.name == "Telecom Cambodia"


@pytest.mark.parametrize("raw,e164", [
    ("012 345 678", "+85512345678"),
    ("+855 12 345 678", "+85512345678"),
    ("+855-12-345-678", "+85512345678"),
    ("(012) 345-678", "+85512345678"),
    ("+1 415 555 2671", "+14155552671"),
    ("+44 7911 123456", "+447911123456"),
])
def test_normalised_to_e164(raw, e164):
    assert parse_phone(raw).e164 == e164


def test_other_countries_have_no_carrier():
    for number in ("+14155552671", "+447911123456", "+66812345678", "+84912345678"):
        parsed = parse_phone(number)
        assert parsed.carrier is None and parsed.country_code != 855


@pytest.mark.parametrize("raw,code", [
    ("", "parameter_missing"),
    ("hello", "phone_invalid"),
    ("+855", "phone_invalid"),
    ("+85512345", "phone_invalid"),            # too short
    ("+8551234567890", "phone_invalid"),       # too long
    ("+85523123456", "phone_invalid"),          # not a valid KH number
    ("+85523756789", "phone_not_mobile"),       # Phnom Penh fixed line
    ("+855802345678", "phone_invalid"),
    ("+85583234567", "phone_unknown_carrier"),  # valid mobile pattern, no operator allocated
    ("+1 555 0100", "phone_invalid"),
    ("+999123456789", "phone_invalid"),
    ("12" * 20, "phone_invalid"),
    ("+85512345678 ext. 12", "phone_invalid"),
])
def test_invalid_numbers_rejected(raw, code):
    with pytest.raises(InvalidRequest) as err:
        parse_phone(raw)
    assert err.value.code == code and err.value.status == 400


def test_carrier_table_is_consistent():
    raw = json.loads(phone_mod.DATA_FILE.read_text())
    assert raw["sources"], "the table must name its sources"
    table = phone_mod.carrier_table()
    assert {"Smart", "Cellcard", "Metfone"} <= set(table.carriers.values())
    # every prefix is a KH mobile range libphonenumber accepts (with a plausible subscriber number)
    import phonenumbers
    for prefix in table.prefixes:
        candidates = [f"+855{prefix}{'2' * (n - len(prefix))}" for n in (8, 9)]
        assert any(phonenumbers.is_valid_number(phonenumbers.parse(c)) for c in candidates), prefix


@pytest.mark.parametrize("body", [
    {"phone": "+85523756789"}, {"phone": "not a phone"}, {"phone": "+855"}, {},
    {"phone": "+85512345678", "purpose": "mfa"}, {"phone": "+85512345678", "extra": 1},
    {"phone": 85512345678},
])
def test_invalid_numbers_are_400_over_http(auth, body):
    r = auth.post("/v1/auth/phone/start", json=body, headers={"X-Forwarded-For": fresh_ip()})
    assert_error(r, 400)
