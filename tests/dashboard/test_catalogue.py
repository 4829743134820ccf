"""Every string the dashboard shows has a Khmer translation, with the same placeholders: the
message ids are extracted from the code and templates as ``pybabel extract`` does, so a new
English string without its Khmer one fails here."""
from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import shared.dashboard

PACKAGE = Path(shared.dashboard.__file__).resolve().parent
PO = PACKAGE / "locale" / "km" / "LC_MESSAGES" / "messages.po"
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KHMER = re.compile(r"[\u1780-\u17FF]")


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\(\w+\)s|%%", text))


def test_every_dashboard_string_has_a_khmer_translation_with_the_same_placeholders():
    ids = {msg for *_, msg, _comments, _ctx in extract_from_dir(str(PACKAGE), METHODS, OPTIONS)}
    assert len(ids) > 200
    with PO.open("rb") as f:
        catalog = read_po(f, locale="km")
    missing, broken = [], []
    for msgid in sorted(ids):
        entry = catalog.get(msgid)
        if entry is None or not entry.string:
            missing.append(msgid)
        elif _placeholders(entry.string) != _placeholders(msgid) or \
                (not KHMER.search(entry.string) and msgid not in ("URL",)):
            broken.append(msgid)
    assert not missing, f"add Khmer for: {missing[:10]}"
    assert not broken, f"placeholders or script differ: {broken[:10]}"
    stale = [m.id for m in catalog if m.id and m.id not in ids]
    assert not stale, f"no longer used: {stale[:10]}"
