"""Content checks and SMS counting (pure: no emulator).

Encoding counts follow 3GPP TS 23.038/23.040: GSM-7 160/153 septets with extension characters
costing two and never split, UCS-2 70/67 units with surrogate pairs never split. The spam rules
come from the shipped data file, and a changed file is picked up without a restart.
"""
from __future__ import annotations

import json
import os
import shutil

import pytest

from shared.platform.errors import InvalidRequest
from shared.relay import content, encoding
from shared.relay.optout import is_stop


# --- encoding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text,enc,units,parts", [
    ("hello", "GSM-7", 5, 1),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("{" * 80, "GSM-7", 160, 1),          # extension characters cost two septets
    ("{" * 81, "GSM-7", 162, 2),
    ("€" + "a" * 159, "GSM-7", 161, 2),
    ("Ça coûte 5€", "UCS-2", 11, 1),      # û is not in the GSM alphabet
    ("សួស្តី", "UCS-2", 6, 1),             # Khmer
    ("ក" * 70, "UCS-2", 70, 1),
    ("ក" * 71, "UCS-2", 71, 2),
    ("ក" * 134, "UCS-2", 134, 2),
    ("ក" * 135, "UCS-2", 135, 3),
    ("😀" * 35, "UCS-2", 70, 1),           # a surrogate pair is two units
    ("😀" * 36, "UCS-2", 72, 2),
])
def test_encoding_and_parts(text, enc, units, parts):
    got = encoding.encode(text)
    assert (got.encoding, got.units, got.parts) == (enc, units, parts)
    assert got.characters == len(text)


def test_a_two_unit_character_never_straddles_a_part_boundary():
    # 152 septets then an extension character: it does not fit the first 153-septet part
    text = "a" * 152 + "{" + "a" * 10
    assert encoding.count_parts(text, encoding.GSM7) == (164, 2)
    # 66 UCS-2 units then an emoji: same rule with surrogate pairs
    text = "ក" * 66 + "😀" + "ក" * 67
    assert encoding.count_parts(text, encoding.UCS2) == (135, 3)


@pytest.mark.parametrize("text,code", [
    ("", "text_empty"), ("   \n ", "text_empty"),
    ("a" * 1531, "text_too_long"),           # 11 parts of GSM-7
    ("ក" * 671, "text_too_long"),            # 11 parts of UCS-2
    ("bad \x00 byte", "text_invalid"), ("bell\x07", "text_invalid"),
    ("lone \ud800 surrogate", "text_invalid"),
])
def test_unusable_text_is_a_400_with_its_code(text, code):
    with pytest.raises(InvalidRequest) as exc:
        encoding.encode(text)
    assert exc.value.code == code and exc.value.param == "text"


def test_ten_parts_is_the_limit():
    assert encoding.encode("a" * 1530).parts == 10
    assert encoding.encode("ក" * 670).parts == 10
    assert encoding.encode("a" * 200, max_parts=2).parts == 2
    with pytest.raises(InvalidRequest):
        encoding.encode("a" * 307, max_parts=2)


# --- content ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "Your Payloom code is 482913. Do not share it with anyone.",
    "កូដរបស់អ្នកគឺ 482913។ កុំប្រាប់អ្នកដទៃ។",
    "Hi Mr.Smith, your parcel arrives at 5pm. See https://shop.example.com/track/12",
    "Your order #1234 is confirmed. Thank you!",
    "Reminder: your appointment is tomorrow at 9:00.",
])
def test_ordinary_messages_pass(text):
    verdict = content.assess(text)
    assert not verdict.blocked, verdict


@pytest.mark.parametrize("text,reason", [
    ("Congratulations! You have WON. Claim your prize now", "content_spam"),
    ("fr33 m0ney at our c4sino, bet now", "content_spam"),             # look-alike digits
    ("សូមអបអរសាទរ! អ្នកឈ្នះរង្វាន់ធំ ឥតគិតថ្លៃ ចុចតំណនេះ", "content_spam"),  # Khmer
    ("ឈ្នះ\u200bរង្វាន់ ធំ ភ្នាល់ ឥឡូវ", "content_spam"),              # zero-width space dodge
    ("Track it at bit.ly/3xYz", "content_url_shortener"),
    ("See https://www.tinyurl.com/abc", "content_url_shortener"),
    ("Please verify your account at https://aba-secure.com/login", "content_phishing"),
    ("Reply with your OTP to keep your account", "content_phishing"),
    ("Login at http://203.0.113.9/bank", "content_phishing"),
    ("គណនីរបស់អ្នកត្រូវបានបិទ សូមទូរសព្ទមកយើង", "content_phishing"),
])
def test_spam_shorteners_and_phishing_are_blocked_with_a_reason(text, reason):
    verdict = content.assess(text)
    assert verdict.reason == reason, verdict
    with pytest.raises(content.ContentBlocked) as exc:
        content.check(text)
    assert exc.value.code == reason and exc.value.status == 422 and exc.value.param == "text"


def test_each_term_counts_once_and_scores_add_up():
    rules = content.load_rules()
    one = content.assess("casino", rules)
    twice = content.assess("casino casino casino", rules)
    assert one.score == twice.score == 6 and not one.blocked
    assert content.assess("casino bet now", rules).score == 13


def test_the_rules_file_is_reloaded_when_it_changes(tmp_path):
    path = tmp_path / "rules.json"
    shutil.copy(content.DATA_FILE, path)
    text = "Fresh mangoes delivered today"
    assert not content.assess(text, content.load_rules(path)).blocked
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["terms"].append({"text": "fresh mangoes", "weight": 50, "lang": "en"})
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a visible change
    assert content.assess(text, content.load_rules(path)).reason == "content_spam"


def test_a_broken_rules_file_is_refused_with_its_reason():
    with pytest.raises(ValueError, match="invalid spam rules"):
        content.parse_rules({"thresholds": {}, "terms": []})
    with pytest.raises(ValueError, match="invalid spam rules"):
        content.parse_rules({"thresholds": {"block": 5}, "phishing": [{"name": "x", "pattern": "("}]})


def test_the_shipped_rules_hold_khmer_and_english_terms():
    rules = content.load_rules()
    langs = {t.lang for t in rules.terms}
    assert {"en", "km"} <= langs and "bit.ly" in rules.shorteners and rules.phishing


@pytest.mark.parametrize("text,stop", [("STOP", True), (" stop. ", True), ("Unsubscribe", True),
                                       ("ឈប់", True), ("stop sending me stuff later", False),
                                       ("ok thanks", False), ("", False)])
def test_stop_replies(text, stop):
    assert is_stop(text) is stop
