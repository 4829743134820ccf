"""``shared.web.pages``: CSP nonce, CSRF, languages, static files and HTML errors."""
from __future__ import annotations

import re

import pytest

from shared.web import security


@pytest.fixture
def client(page_app):
    return page_app.test_client()


def csrf_from(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_page_has_a_strict_csp_whose_nonce_matches_the_page(client):
    r = client.get("/sample/things/th_1")
    assert r.status_code == 200 and r.content_type.startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f'nonce="{nonce}"' in r.text
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"
    again = client.get("/sample/things/th_1")
    assert re.search(r"'nonce-([^']+)'", again.headers["Content-Security-Policy"]).group(1) != nonce


def test_values_are_escaped(client):
    r = client.get("/sample/things/th_1?name=<script>alert(1)</script>")
    assert "<script>alert(1)" not in r.text and "&lt;script&gt;" in r.text


def test_post_needs_the_csrf_token_of_its_own_cookie(client, page_app):
    page = client.get("/sample/things/th_1")
    token = csrf_from(page.text)
    ok = client.post("/sample/things/th_1", data={"csrf_token": token, "note": "x"})
    assert ok.status_code == 303 and ok.headers["Location"].endswith("?done=1")

    missing = client.post("/sample/things/th_1", data={"note": "x"})
    assert missing.status_code == 403 and "text/html" in missing.content_type
    assert "expired" in missing.text

    other = page_app.test_client()            # a different browser: another cookie
    other.get("/sample/things/th_1")
    assert other.post("/sample/things/th_1", data={"csrf_token": token}).status_code == 403

    cross = client.post("/sample/things/th_1", data={"csrf_token": token},
                        headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    evil = client.post("/sample/things/th_1", data={"csrf_token": token},
                       headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403


def test_a_post_with_no_cookie_at_all_is_refused(page_app):
    fresh = page_app.test_client()
    forged = security.csrf_token(b"guess", "a" * 32)
    assert fresh.post("/sample/things/th_1", data={"csrf_token": forged}).status_code == 403


def test_csrf_cookie_is_httponly_and_lax(client):
    r = client.get("/sample/things/th_1")
    cookie = [c for c in r.headers.getlist("Set-Cookie") if c.startswith("payloom_csrf=")][0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie


@pytest.mark.parametrize("header,expected", [
    ("km-KH,km;q=0.9,en;q=0.5", "សួស្តី"),
    ("fr-FR,km;q=0.8", "សួស្តី"),
    ("fr-FR,de;q=0.8", "Hello"),
    ("", "Hello"),
])
def test_language_follows_accept_language(client, header, expected):
    r = client.get("/sample/things/th_1?name=Dara", headers={"Accept-Language": header})
    assert expected in r.text
    lang = "km" if expected != "Hello" else "en"
    assert f'<html lang="{lang}">' in r.text


def test_the_switch_wins_and_is_remembered(client):
    r = client.get("/sample/things/th_1?lang=km", headers={"Accept-Language": "en"})
    assert "បង់ឥឡូវនេះ" in r.text
    assert any(c.startswith("lang=km") for c in r.headers.getlist("Set-Cookie"))
    assert "បង់ឥឡូវនេះ" in client.get("/sample/things/th_1", headers={"Accept-Language": "en"}).text
    assert "បង់ឥឡូវនេះ" in client.get("/sample/things/th_1?lang=xx", headers={"Accept-Language": "en"}).text
    assert "Pay now" in client.get("/sample/things/th_1?lang=en", headers={"Accept-Language": "km"}).text


def test_unknown_lang_value_is_ignored(page_app):
    c = page_app.test_client()
    r = c.get("/sample/things/th_1?lang=../../etc", headers={"Accept-Language": "en"})
    assert r.status_code == 200 and "Pay now" in r.text
    assert not any(h.startswith("lang=") for h in r.headers.getlist("Set-Cookie"))


def test_static_files_are_versioned_and_cached(client):
    page = client.get("/sample/things/th_1")
    src = re.search(r'src="(/sample/static/app\.js\?v=([0-9a-f]{12}))"', page.text)
    assert src
    r = client.get(src.group(1))
    assert r.status_code == 200 and r.content_type.startswith("text/javascript")
    assert "immutable" in r.headers["Cache-Control"]
    stale = client.get("/sample/static/app.js?v=000000000000")
    assert stale.headers["Cache-Control"] == "no-cache"
    again = client.get(src.group(1), headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("path", ["/sample/static/../secret.txt", "/sample/static/%2e%2e/secret.txt",
                                  "/sample/static/.hidden", "/sample/static/vendor/nope.js",
                                  "/sample/static/", "/sample/static/..%5csecret.txt",
                                  "/sample/static/%00", "/sample/static/a%00.js",
                                  "/sample/static/" + "a" * 300, "/sample/static/" + "a/" * 200 + "x.js",
                                  "/sample/static/vendor/%00"])
def test_static_files_never_escape_their_folder(client, path):
    r = client.get(path)
    assert r.status_code == 404 and "not public" not in r.text


def test_vendored_npm_files_are_served_from_our_origin(client):
    r = client.get("/sample/static/vendor/chart.umd.min.js")
    assert r.status_code == 200 and b"Chart" in r.data[:5000]


def test_errors_are_html_pages_that_leak_nothing(client):
    r = client.get("/sample/conflict")
    assert r.status_code == 409 and "already paid" in r.text and "text/html" in r.content_type
    boom = client.get("/sample/boom")
    assert boom.status_code == 500
    assert "secret internals" not in boom.text and "Traceback" not in boom.text
    assert client.get("/sample/nowhere").status_code == 404
    assert client.get("/sample/things/__reserved__").status_code == 404
    assert client.get("/sample/things/" + "x" * 2000).status_code == 404
    put = client.put("/sample/things/th_1")
    assert put.status_code == 405 and "GET" in put.headers["Allow"]


def test_an_oversized_form_is_a_4xx(client, deps):
    token_page = client.get("/sample/things/th_1")
    big = "x" * (deps.settings.max_body_bytes + 10)
    r = client.post("/sample/things/th_1", data={"csrf_token": csrf_from(token_page.text), "note": big})
    assert r.status_code == 413
