"""``shared/web``'s own strings (the error page, the CSRF refusal, an unknown page, an unreadable
request, a failure) in Khmer: its catalogue is the fallback of every capability's, which still
wins where it words a string its own way; the catalogue covers every msgid of ``shared/web``."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import flask
import pytest
from babel.messages.pofile import read_po

from shared.web import i18n, messages
from shared.web.pages import Page, Pages

REPO = Path(__file__).resolve().parents[2]
WEB_PO = REPO / "shared/web/locale/km/LC_MESSAGES/messages.po"
KM = {"Accept-Language": "km"}


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _km(msgid: str) -> str:
    return {m.id: m.string for m in read_po(WEB_PO.open("rb"), locale="km")}[msgid]


@pytest.fixture
def client(page_app):
    return page_app.test_client()


def test_a_capability_without_those_strings_refuses_in_khmer(client):
    client.get("/sample/things/th_1", headers=KM)
    r = client.post("/sample/things/th_1", data={"note": "x"}, headers=KM)   # no CSRF token
    assert r.status_code == 403 and '<html lang="km">' in r.text
    assert _km(messages.CSRF_EXPIRED) in r.text and "expired" not in r.text
    assert _km("Something is not right") in r.text and _km("Error") in r.text
    cross = client.post("/sample/things/th_1", data={"csrf_token": "x"},
                        headers={**KM, "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403 and _km(messages.CSRF_CROSS_SITE) in cross.text
    evil = client.post("/sample/things/th_1", data={"csrf_token": "x"},
                       headers={**KM, "Origin": "https://evil.example"})
    assert _km(messages.CSRF_CROSS_ORIGIN) in evil.text


@pytest.mark.parametrize("method,path,status,msgid", [
    ("GET", "/sample/nowhere", 404, messages.PAGE_MISSING),
    ("GET", "/sample/things/__x__", 404, messages.PAGE_MISSING),
    ("PUT", "/sample/things/th_1", 405, messages.METHOD_REFUSED),
    ("GET", "/sample/static/nope.js", 404, messages.FILE_MISSING),
    ("GET", "/sample/boom", 500, messages.FAILED),
])
def test_the_routers_own_refusals_are_translated(client, method, path, status, msgid):
    r = client.open(path, method=method, headers=KM)
    assert r.status_code == status and _km(msgid) in r.text and msgid not in r.text
    english = client.open(path, method=method, headers={"Accept-Language": "en"})
    assert english.status_code == status and msgid in english.text


def test_an_unreadable_form_is_refused_in_khmer(client, deps):
    page = client.get("/sample/things/th_1", headers=KM)
    big = "x" * (deps.settings.max_body_bytes + 10)
    r = client.post("/sample/things/th_1", data={"csrf_token": _csrf(page.text), "note": big},
                    headers=KM)
    assert 400 <= r.status_code < 500 and _km(messages.UNREADABLE) in r.text


def test_a_service_message_is_not_run_through_the_catalogue(client):
    r = client.get("/sample/conflict", headers=KM)
    assert r.status_code == 409 and "That thing is already paid." in r.text


def test_the_capabilitys_own_wording_wins(tmp_path, deps):
    (tmp_path / "locale/km/LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "locale/km/LC_MESSAGES/messages.po").write_text(textwrap.dedent('''\
        msgid ""
        msgstr ""
        "Content-Type: text/plain; charset=UTF-8\\n"
        "Language: km\\n"

        msgid "This page does not exist."
        msgstr "រកទំព័រមិនឃើញ (ពាក្យរបស់យើង)"
        '''))
    own = Pages("own_words", web_root="own", package_dir=tmp_path)

    @own.get("/ok")
    def ok(ctx):
        return Page("web/error.html", {"status": 200, "message": "ok"})

    app = flask.Flask("own-words")
    app.add_url_rule("/<path:path>", "serve", lambda path: own(flask.request), methods=["GET"])
    r = app.test_client().get("/own/missing", headers=KM)
    assert r.status_code == 404 and "ពាក្យរបស់យើង" in r.text
    assert _km("Something is not right") in r.text                   # the rest falls back


def test_chaining_leaves_the_cached_catalogues_alone(sample_pages):
    own = str(sample_pages.package_dir / "locale")
    single = i18n.translations(own, "km")
    chained = i18n.chain((own, i18n.WEB_LOCALE), "km")
    assert chained is not single and getattr(single, "_fallback", None) is None
    assert chained.gettext("Pay now") == "បង់ឥឡូវនេះ"                        # the capability's
    assert chained.gettext(messages.PAGE_MISSING) == _km(messages.PAGE_MISSING)   # the fallback
    assert chained.gettext("never heard of it") == "never heard of it"
    assert i18n.chain((own, i18n.WEB_LOCALE), "en").gettext(messages.PAGE_MISSING) == \
        messages.PAGE_MISSING


def catalogue_of(package: str, tmp_path: Path) -> tuple[set[str], dict[str, str]]:
    """The msgids ``pybabel extract`` finds in ``shared/<package>`` and its Khmer catalogue."""
    pot = tmp_path / f"{package}.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "extract", "-F",
                    str(REPO / "shared/web/babel.cfg"), "-k", "N_", "-o", str(pot),
                    str(REPO / "shared" / package)], check=True, capture_output=True)
    po = REPO / "shared" / package / "locale/km/LC_MESSAGES/messages.po"
    return ({m.id for m in read_po(pot.open("rb")) if m.id},
            {m.id: m.string for m in read_po(po.open("rb"), locale="km") if m.id})


def assert_khmer(msgid: str, text: str) -> None:
    """A real Khmer translation with the msgid's placeholders."""
    assert text and text != msgid and re.search(r"[\u1780-\u17FF]", text), msgid
    assert sorted(re.findall(r"%\(\w+\)s", text)) == sorted(re.findall(r"%\(\w+\)s", msgid)), msgid


def test_the_web_catalogue_translates_every_msgid_of_shared_web(tmp_path):
    wanted, km = catalogue_of("web", tmp_path)
    assert messages.OWN <= wanted and {"Error", "Something is not right"} <= wanted
    assert set(km) == wanted                              # nothing missing, nothing stale
    for msgid, text in km.items():
        assert_khmer(msgid, text)
