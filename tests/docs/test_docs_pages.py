"""The docs function's pages without a browser: the document and its caching, the reference page's
assets and CSP, the quick start, events and errors pages, the frozen document of a deployed
function, and the Khmer catalogue."""
from __future__ import annotations

import json
import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from shared.docs import guide, spec
from shared.docs.http import pages
from shared.platform import catalog
from shared.platform.openapi import build_openapi

PAGES = ["/docs", "/docs/quickstart", "/docs/events", "/docs/errors"]


def test_the_document_is_served_and_cached_by_its_hash(docs):
    r = docs.get("/docs/openapi.json")
    assert r.status_code == 200 and r.content_type == "application/json"
    doc = spec.current()
    assert r.get_json() == json.loads(doc.body) and r.get_json()["openapi"] == "3.1.0"
    assert r.headers["ETag"] == doc.etag and r.headers["Cache-Control"] == "no-cache"
    assert docs.get("/docs/openapi.json", headers={"If-None-Match": doc.etag}).status_code == 304
    versioned = docs.get(f"/docs/openapi.json?v={doc.digest}")
    assert "immutable" in versioned.headers["Cache-Control"]
    assert "immutable" not in docs.get("/docs/openapi.json?v=stale").headers["Cache-Control"]


def test_the_reference_loads_swagger_ui_from_our_files_under_a_strict_csp(docs):
    r = docs.get("/docs")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    csp = r.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "connect-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert f'data-spec-url="/docs/openapi.json?v={spec.current().digest}"' in html
    for name in ("vendor/swagger-ui-bundle.js", "vendor/swagger-ui.css", "reference.js", "docs.css"):
        url = re.search(rf'"(/docs/static/{re.escape(name)}\?v=\w+)"', html).group(1)
        asset = docs.get(url)
        assert asset.status_code == 200 and "immutable" in asset.headers["Cache-Control"], name
    bundle = docs.get("/docs/static/vendor/swagger-ui-bundle.js").get_data()
    assert len(bundle) > 500_000   # the real Swagger UI, not a stub


@pytest.mark.parametrize("path", PAGES)
def test_pages_reference_nothing_outside_this_origin(docs, path):
    html = docs.get(path).get_data(as_text=True)
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', html), path
    assert "<script>" not in html and "onclick" not in html


def test_the_quick_start_uses_this_server_a_test_key_and_the_sdk(docs):
    html = docs.get("/docs/quickstart", base_url="http://docs.payloom.test").get_data(as_text=True)
    assert "curl http://docs.payloom.test/v1/payment_intents" in html
    body = json.dumps(guide.QUICKSTART_INTENT, separators=(",", ":"))
    assert body.replace('"', "&#34;") in html   # autoescaped, shell-quoted body
    assert "payloom.api_key = &#34;sk_test_…&#34;" in html
    assert "payloom.PaymentIntent.create(" in html and "construct_event(" in html
    assert "sk_live_" not in html


def test_the_quick_start_request_is_a_valid_create(docs):
    """The page's request body is what the create route accepts (the browser test sends it)."""
    from shared.payments.http import api
    [create] = [r for r in api.routes if r.method == "POST" and r.path == "/"]
    create.body.model_validate(guide.QUICKSTART_INTENT)


def test_the_events_page_lists_every_public_event_type_and_no_private_one(docs):
    html = docs.get("/docs/events").get_data(as_text=True)
    declared = catalog.load_all()
    public = [n for n, e in declared.items() if e.public]
    private = [n for n, e in declared.items() if not e.public]
    assert public and all(f"<code>{n}</code>" in html for n in public)
    assert not any(f"<code>{n}</code>" in html for n in private)
    assert 'href="/docs/#/webhooks/event_payment_intent_succeeded"' in html
    assert "webhook-signature" in html and "&#34;type&#34;: &#34;payment_intent.succeeded&#34;" in html


def test_the_errors_page_lists_the_codes_of_every_status(docs):
    html = docs.get("/docs/errors").get_data(as_text=True)
    for status, code in ((400, "parameter_missing"), (401, "invalid_api_key"), (403, "missing_scope"),
                         (404, "resource_missing"), (409, "idempotency_key_reused"), (429, "rate_limited")):
        row = re.search(rf'<tr id="status-{status}">(.*?)</tr>', html, re.DOTALL).group(1)
        assert f"<code>{code}</code>" in row, (status, code)


def test_khmer_pages_are_translated(docs):
    html = docs.get("/docs/quickstart?lang=km").get_data(as_text=True)
    assert '<html lang="km">' in html and "ចាប់ផ្តើមរហ័ស" in html
    assert "Quick start" not in html


def test_an_unknown_docs_page_is_an_html_404(docs):
    r = docs.get("/docs/nowhere")
    assert r.status_code == 404 and r.content_type.startswith("text/html")
    assert "Traceback" not in r.get_data(as_text=True)


def test_a_frozen_document_is_served_as_built(tmp_path, deps):
    frozen = spec.freeze(tmp_path, {"openapi": "3.1.0", "paths": {"/v1/x": {}}, "webhooks": {}})
    doc = spec.current(frozen)
    assert doc.spec["paths"] == {"/v1/x": {}} and doc.body == frozen.read_bytes()
    with pytest.raises(RuntimeError):
        spec.freeze(tmp_path, build_openapi([]))   # a build without routers must not ship


def test_the_khmer_catalogue_translates_every_message():
    root = pages.package_dir
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    wanted = {m[2] for m in extract_from_dir(str(root), method_map, options_map=options)}
    wanted |= {"Error", "Something is not right", "The request could not be read.",
               "Something went wrong on our side. Please try again."}   # shared/web's error page
    with (root / "locale" / "km" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        po = {m.id: m.string for m in read_po(f) if m.id}
    missing = [m for m in wanted if not po.get(m)]
    assert not missing, missing
    for msgid, text in po.items():
        assert re.findall(r"%\(\w+\)s", msgid) == re.findall(r"%\(\w+\)s", text), msgid
